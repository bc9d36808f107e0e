"""Fixture models with parts whose structure cannot be known from the source: they must be
reported unknown (never guessed), while the rest of each model is still derived."""

import json
import os
import random

import torch
import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def depth_from_environment():
    return int(os.environ.get("ESD_DEPTH", "3"))


class UnknownLoop(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.stem = nn.Linear(d, d)
        self.blocks = nn.ModuleList()
        for _ in range(depth_from_environment()):
            self.blocks.append(nn.Linear(d, d))
        self.comp = nn.ModuleList([nn.Linear(d, d) for _ in range(int(os.environ.get("ESD_DEPTH", "2")))])
        self.head = nn.Linear(d, 2)


class GetattrTricks(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        name = os.environ.get("ESD_LAYER", "Linear")
        self.dynamic = getattr(nn, name)(d, d)
        for suffix in json.loads(os.environ.get("ESD_NAMES", '["a", "b"]')):
            setattr(self, "extra_" + suffix, nn.Linear(d, 1))
        self.fixed = nn.Linear(d, 3)
        self.act = ACTIVATIONS[os.environ.get("ESD_ACT", "relu")]()


def make_layer(d):
    if random.random() < 2:  # always true at run time, unknowable statically
        return nn.Linear(d, d)
    return nn.Conv1d(d, d, 1)


def make_norm(kind, d):
    if kind == "bn":
        return nn.BatchNorm1d(d)
    if kind == "ln":
        return nn.LayerNorm(d)
    return nn.Identity()


class Factories(nn.Module):
    def __init__(self, d=8, norm=None):
        super().__init__()
        self.random_layer = make_layer(d)
        self.known_norm = make_norm("bn", d)
        self.unknown_norm = make_norm(norm or os.environ.get("ESD_NORM", "ln"), d)
        self.after = nn.Linear(d, d)


class UnknownKwargs(nn.Module):
    def __init__(self, d=8, **kwargs):
        super().__init__()
        options = json.loads(os.environ.get("ESD_OPTIONS", '{"bias": false}'))
        self.opaque = nn.Linear(d, d, **options)
        self.passed = nn.Linear(d, d, **kwargs)
        self.plain = nn.Linear(d, 4)


class UnknownCondition(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        if os.environ.get("ESD_FLAG"):
            self.maybe = nn.Linear(d, d)
        self.always = nn.Linear(d, d)
        self.shape_unknown = nn.Parameter(torch.zeros(int(os.environ.get("ESD_N", "3")), d))
        self.rank_unknown = nn.Parameter(torch.zeros(*json.loads(os.environ.get("ESD_SHAPE", "[2, 2]"))))
        self.register_buffer("buf", torch.load(os.devnull) if os.environ.get("ESD_NEVER") else torch.ones(d))


class WeightNormed(nn.Module):
    def __init__(self, d=8):
        super().__init__()
        self.normed = nn.utils.parametrizations.weight_norm(nn.Linear(d, d))
        self.fine = nn.Linear(d, d)
