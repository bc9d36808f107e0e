"""Fixture models: containers, parameters and buffers made by hand, registration, tying."""

import copy
import math
from collections import OrderedDict

import torch
import torch.nn as nn


class Sequentials(nn.Module):
    def __init__(self, d=8, n=3):
        super().__init__()
        self.plain = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 2))
        self.named = nn.Sequential(OrderedDict([
            ("conv", nn.Conv2d(3, d, 3)),
            ("bn", nn.BatchNorm2d(d)),
            ("act", nn.ReLU()),
        ]))
        layers = [nn.Linear(d, d) for _ in range(n)]
        layers.append(nn.LayerNorm(d))
        self.starred = nn.Sequential(*layers)
        self.grown = nn.Sequential()
        self.grown.add_module("first", nn.Linear(d, 4))
        self.grown.append(nn.Linear(4, 2))
        self.sliced = self.plain[:2]
        self.nested = nn.Sequential(nn.Sequential(nn.Linear(d, d)), nn.ModuleList([nn.Linear(d, 1)]))


class Lists(nn.Module):
    def __init__(self, d=8, depth=4):
        super().__init__()
        self.comp = nn.ModuleList([nn.Linear(d, d) for _ in range(depth)])
        self.gen = nn.ModuleList(nn.Conv1d(d, d, k) for k in (1, 3, 5))
        self.looped = nn.ModuleList()
        for i in range(depth):
            self.looped.append(nn.Linear(d * (i + 1), d))
        self.extended = nn.ModuleList([nn.ReLU()])
        self.extended.extend([nn.Linear(d, 2), nn.Linear(2, 1)])
        self.extended.insert(1, nn.BatchNorm1d(d))
        self.extended += [nn.Linear(1, 1)]
        self.dicts = nn.ModuleDict({"enc": nn.Linear(d, 4), "dec": nn.Linear(4, d)})
        self.dicts["extra"] = nn.Embedding(10, d)
        self.dicts.update({"more": nn.LayerNorm(d)})
        self.pairs = nn.ModuleDict([("a", nn.Linear(2, 2)), ("b", nn.Linear(2, 3))])
        self.params = nn.ParameterList([nn.Parameter(torch.zeros(d, i + 1)) for i in range(3)])
        self.params.append(nn.Parameter(torch.ones(2)))
        self.pdict = nn.ParameterDict({"alpha": nn.Parameter(torch.ones(1)), "beta": torch.zeros(d)})
        blocks = []
        for _ in range(depth - 1):
            blocks.append(nn.Linear(d, d))
        self.from_list = nn.Sequential(*blocks)


class Registered(nn.Module):
    def __init__(self, d=16, max_len=32):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, max_len + 1, d) * 0.02)
        self.scale = nn.Parameter(torch.ones(d), requires_grad=False)
        self.raw = nn.Parameter(torch.Tensor(d, 3))
        self.empty = nn.Parameter(torch.empty(2, d).normal_(std=0.02))
        self.from_data = nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        self.full = nn.Parameter(torch.full((3, d), 0.5))
        self.eye = nn.Parameter(torch.eye(4))
        self.register_parameter("manual", nn.Parameter(torch.rand(5)))
        self.register_parameter("absent", None)
        self.register_buffer("mask", torch.tril(torch.ones(max_len, max_len)).view(1, 1, max_len, max_len))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("temp", torch.arange(d), persistent=False)
        self.register_buffer("ids", torch.arange(0, max_len, 2))
        self.register_buffer("nothing", None)
        pe = torch.zeros(max_len, d)
        position = torch.arange(0, max_len).unsqueeze(1).float()
        div = torch.exp(torch.arange(0, d, 2).float() * (-math.log(10000.0) / d))
        pe[:, 0::2] = torch.sin(position * div)
        pe[:, 1::2] = torch.cos(position * div)
        self.register_buffer("pe", pe.unsqueeze(0))
        self.buffer_attr = nn.Buffer(torch.zeros(d))
        self.transient = nn.Buffer(torch.zeros(2), persistent=False)
        self.add_module("added", nn.Linear(d, 2))
        self.register_module("registered", nn.Conv1d(d, 2, 1))
        self.via_setattr = nn.Linear(2, d)
        for i in range(2):
            setattr(self, f"head{i}", nn.Linear(d, i + 1))
        self.not_state = torch.zeros(d)  # a plain tensor attribute is not in state_dict
        self.number = d * 2
        self.removed = nn.Linear(1, 1)
        del self.removed


class Tied(nn.Module):
    def __init__(self, vocab=50, d=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight
        shared = nn.Linear(d, d)
        self.first = shared
        self.second = shared
        self.blocks[0].bias = None


def clones(module, n):
    return nn.ModuleList([copy.deepcopy(module) for _ in range(n)])


class Cloned(nn.Module):
    def __init__(self, d=8, n=3):
        super().__init__()
        self.layers = clones(nn.Sequential(nn.Linear(d, d), nn.LayerNorm(d)), n)
        self.norm = nn.LayerNorm(d)
