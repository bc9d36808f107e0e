"""Fixture models: every torch.nn layer kind the expected-state derivation knows, with the
arguments that change what they create (bias, groups, affine, track_running_stats, …)."""

import torch
import torch.nn as nn
from torch import nn as torch_nn
from torch.nn import BatchNorm2d, Conv2d, Linear

WIDTH = 12


class Linears(nn.Module):
    def __init__(self, d_in=8, d_out=4, bias=True):
        super().__init__()
        self.a = nn.Linear(d_in, d_out)
        self.b = nn.Linear(d_in, d_out, bias=bias)
        self.c = Linear(in_features=d_out, out_features=WIDTH, bias=False)
        self.bil = nn.Bilinear(d_in, d_out, 3)
        self.bil_nobias = nn.Bilinear(2, 3, 5, False)
        self.ident = nn.Identity(54, unused="x")


class Convs(nn.Module):
    def __init__(self, c=8, groups=2):
        super().__init__()
        self.c1 = nn.Conv1d(c, 16, 3)
        self.c2 = Conv2d(c, 16, (3, 5), stride=2, padding=1, groups=groups, bias=False)
        self.c3 = nn.Conv3d(c, 4, kernel_size=(1, 3, 3), groups=4)
        self.dw = nn.Conv2d(c, c, 3, groups=c)
        self.t1 = nn.ConvTranspose1d(c, 6, 4, groups=2)
        self.t2 = nn.ConvTranspose2d(c, 16, kernel_size=(2, 3), groups=groups, bias=False)
        self.t3 = nn.ConvTranspose3d(4, 8, 3)


class Norms(nn.Module):
    def __init__(self, c=6, affine=True, track=True):
        super().__init__()
        self.bn1 = nn.BatchNorm1d(c)
        self.bn2 = BatchNorm2d(c, affine=affine, track_running_stats=track)
        self.bn3 = nn.BatchNorm3d(c, 1e-3, 0.1, False, True)
        self.bn_nostats = nn.BatchNorm2d(c, track_running_stats=False)
        self.bn_nobias = nn.BatchNorm1d(c, bias=False)
        self.sync = nn.SyncBatchNorm(c)
        self.in1 = nn.InstanceNorm1d(c)
        self.in2 = nn.InstanceNorm2d(c, affine=True)
        self.in3 = nn.InstanceNorm3d(c, affine=True, track_running_stats=True)
        self.ln = nn.LayerNorm(c)
        self.ln2 = nn.LayerNorm((4, c))
        self.ln_noaffine = nn.LayerNorm([c], elementwise_affine=False)
        self.ln_nobias = nn.LayerNorm(c, bias=False)
        self.gn = nn.GroupNorm(2, c)
        self.gn_noaffine = nn.GroupNorm(c // 2, c, affine=False)
        self.rms = nn.RMSNorm(c)
        self.rms2 = nn.RMSNorm([3, c], elementwise_affine=affine)


class Embeddings(nn.Module):
    def __init__(self, vocab=100, dim=16):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim, padding_idx=0)
        self.bag = nn.EmbeddingBag(vocab // 2, dim, mode="sum")
        self.pretrained = nn.Embedding.from_pretrained(torch.zeros(7, 3))


class Activations(nn.Module):
    """PReLU has a parameter; the rest create nothing."""

    def __init__(self):
        super().__init__()
        self.prelu = nn.PReLU()
        self.prelu8 = torch_nn.PReLU(num_parameters=8)
        self.free = nn.Sequential(
            nn.ReLU(), nn.ReLU6(inplace=True), nn.LeakyReLU(0.2), nn.GELU(approximate="tanh"),
            nn.SiLU(), nn.Mish(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(dim=-1), nn.ELU(),
            nn.Hardswish(), nn.Dropout(0.1), nn.Dropout2d(), nn.AlphaDropout(0.2),
            nn.MaxPool2d(2), nn.AvgPool1d(3), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Unflatten(1, (2, 3)), nn.Upsample(scale_factor=2), nn.PixelShuffle(2),
            nn.ZeroPad2d(1), nn.ReflectionPad1d(2), nn.Threshold(0.1, 0.0), nn.GLU(),
        )
        self.loss = nn.CrossEntropyLoss(label_smoothing=0.1)
        self.weighted_loss = nn.CrossEntropyLoss(weight=torch.ones(5))
        self.bce = nn.BCEWithLogitsLoss(pos_weight=torch.ones(3))


class Lazy(nn.Module):
    """Lazy layers: their input sizes come with the first forward, so those dims are unknown."""

    def __init__(self):
        super().__init__()
        self.linear = nn.LazyLinear(6)
        self.conv = nn.LazyConv2d(10, 3, bias=False)
        self.transposed = nn.LazyConvTranspose1d(4, 2)
        self.bn = nn.LazyBatchNorm1d()
        self.instance = nn.LazyInstanceNorm2d(affine=False)


class Adaptive(nn.Module):
    def __init__(self):
        super().__init__()
        self.asm = nn.AdaptiveLogSoftmaxWithLoss(32, 100, [10, 50], div_value=2.0)
