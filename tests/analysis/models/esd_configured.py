"""Fixture models configured through arguments, defaults, module constants, config dicts,
dataclasses, NamedTuples, **kwargs, functools.partial, helper functions and inheritance."""

from dataclasses import dataclass, field
from functools import partial
from types import SimpleNamespace
from typing import NamedTuple

import torch
import torch.nn as nn

NUM_CLASSES = 10
HIDDEN = 64
CONFIG = {"vocab_size": 120, "hidden": 32, "layers": 2, "heads": 4, "dropout": 0.1}
CHANNELS = (16, 32, 64)


@dataclass
class ModelConfig:
    vocab_size: int = 100
    n_embd: int = 32
    n_layer: int = 3
    n_head: int = 4
    bias: bool = True
    block_size: int = 16
    widths: list = field(default_factory=lambda: [8, 16])


class Sizes(NamedTuple):
    d_in: int
    d_out: int = 6


SMALL = ModelConfig(n_layer=2, n_embd=16)
NAMESPACE = SimpleNamespace(width=24, classes=5)


class Classifier(nn.Module):
    def __init__(self, num_classes=NUM_CLASSES, hidden=HIDDEN, dropout=0.5):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(28 * 28, hidden * 2), nn.ReLU(),
                                      nn.Linear(hidden * 2, hidden))
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)


def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample


class ResNet(nn.Module):
    """torchvision's ResNet structure, written out (with _make_layer and expansion)."""

    def __init__(self, block, layers, num_classes=1000, width=16, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * 4 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes, blocks, stride=1):
        norm_layer = self._norm_layer
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                norm_layer(planes * block.expansion),
            )
        layers = []
        layers.append(block(self.inplanes, planes, stride, downsample, norm_layer))
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, norm_layer=norm_layer))
        return nn.Sequential(*layers)


def resnet_small(num_classes=10):
    return ResNet(BasicBlock, [2, 1, 1], num_classes=num_classes)


class DictConfigured(nn.Module):
    def __init__(self, cfg=CONFIG):
        super().__init__()
        self.embed = nn.Embedding(cfg["vocab_size"], cfg["hidden"])
        self.rnn = nn.GRU(cfg["hidden"], cfg["hidden"], num_layers=cfg["layers"],
                          dropout=cfg.get("dropout", 0.0))
        self.heads = cfg["heads"]
        self.out = nn.Linear(cfg["hidden"], cfg["vocab_size"])


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.n_head = config.n_head
        self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                             .view(1, 1, config.block_size, config.block_size))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)


class LayerNorm(nn.Module):
    """nanoGPT's LayerNorm with an optional bias."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)


class GPT(nn.Module):
    """nanoGPT's structure: a ModuleDict of dict(...), a comprehension over n_layer, tying."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(0.0),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)


class WithNamedTuple(nn.Module):
    def __init__(self, sizes=Sizes(4), ns=NAMESPACE):  # noqa: B008 (as real models write it)
        super().__init__()
        self.a = nn.Linear(sizes.d_in, sizes.d_out)
        self.b = nn.Linear(sizes[1], ns.width)
        self.c = nn.Linear(ns.width, ns.classes)


class KwargsPassthrough(nn.Module):
    def __init__(self, d, **kwargs):
        super().__init__()
        self.fc = nn.Linear(d, d, **kwargs)
        self.norm = nn.LayerNorm(d, **{k: v for k, v in kwargs.items() if k == "bias"})


class PartialNorm(nn.Module):
    def __init__(self, d=12, norm_layer=partial(nn.LayerNorm, eps=1e-6)):  # noqa: B008
        super().__init__()
        self.norm1 = norm_layer(d)
        self.norm2 = norm_layer(d * 2, elementwise_affine=False)
        act_layer = nn.GELU
        self.act = act_layer()


class Conditional(nn.Module):
    def __init__(self, d=8, use_bn=True, kind="mlp", head=None, extra_layers=0):
        super().__init__()
        if use_bn:
            self.norm = nn.BatchNorm1d(d)
        else:
            self.norm = nn.LayerNorm(d)
        if kind == "mlp":
            self.body = nn.Sequential(nn.Linear(d, d * 4), nn.GELU(), nn.Linear(d * 4, d))
        elif kind == "conv":
            self.body = nn.Conv1d(d, d, 3, padding=1)
        else:
            raise ValueError(kind)
        self.head = nn.Linear(d, head) if head is not None else nn.Identity()
        self.extra = nn.ModuleList()
        i = 0
        while i < extra_layers:
            self.extra.append(nn.Linear(d, d))
            i += 1
        self.wide = d > 4 and use_bn


class Base(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.stem = nn.Conv2d(3, d, 3)
        self.build_head(d)

    def build_head(self, d):
        self.head = nn.Linear(d, 2)


class Derived(Base):
    def __init__(self, d=8, extra=3):
        super().__init__(d)
        self.extra = nn.Linear(d, extra)

    def build_head(self, d):
        self.head = nn.Linear(d, 7)


class NoInit(Derived):
    pass


class OldStyleSuper(Base):
    def __init__(self):
        Base.__init__(self, 4)
        self.tail = nn.Linear(4, 4)


class ExplicitSuper(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)


class MyStack(nn.Sequential):
    def __init__(self, d, n):
        super().__init__(*[nn.Linear(d, d) for _ in range(n)])
        self.append(nn.LayerNorm(d))


class MyList(nn.ModuleList):
    def __init__(self, d):
        super().__init__([nn.Linear(d, d), nn.Linear(d, 1)])


class MyLinear(nn.Linear):
    def __init__(self, d, lora_rank=2):
        super().__init__(d, d)
        self.lora_a = nn.Parameter(torch.zeros(lora_rank, d))
        self.lora_b = nn.Parameter(torch.zeros(d, lora_rank))


class UsesSubclasses(nn.Module):
    def __init__(self, d=6):
        super().__init__()
        self.stack = MyStack(d, 3)
        self.list = MyList(d)
        self.lin = MyLinear(d)
        self.derived = Derived(d, extra=5)
        self.noinit = NoInit()
        self.old = OldStyleSuper()
        self.explicit = ExplicitSuper()


class DataclassModel(nn.Module):
    def __init__(self, cfg: ModelConfig = SMALL):
        super().__init__()
        self.embed = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList([nn.Linear(cfg.n_embd, cfg.n_embd) for _ in range(cfg.n_layer)])
        self.widths = nn.ModuleList([nn.Linear(w, w) for w in cfg.widths])


class ConvNet(nn.Module):
    def __init__(self, channels=CHANNELS, num_classes=NUM_CLASSES, in_ch=3):
        super().__init__()
        stages = []
        for out_ch in channels:
            stages += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU()]
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(channels[-1], num_classes)
        self.zipped = nn.ModuleList(nn.Linear(a, b) for a, b in zip(channels, channels[1:]))  # noqa: B905
        self.enumerated = nn.ModuleDict({f"s{i}": nn.Linear(c, i + 1) for i, c in enumerate(channels)})
        self.maxed = nn.Linear(max(channels), min(channels) // 2 + len(channels))
