"""Fixture models: recurrent layers and cells, attention and transformers."""

import torch.nn as nn


class Recurrent(nn.Module):
    def __init__(self, inputs=10, hidden=20, layers=2):
        super().__init__()
        self.rnn = nn.RNN(inputs, hidden, layers, "relu", False)
        self.lstm = nn.LSTM(inputs, hidden, num_layers=layers, bidirectional=True)
        self.proj = nn.LSTM(inputs, hidden, 3, batch_first=True, proj_size=5, bidirectional=True)
        self.proj_nobias = nn.LSTM(inputs, hidden, proj_size=4, bias=False)
        self.gru = nn.GRU(inputs, hidden, layers, batch_first=True, dropout=0.1 if layers > 1 else 0.0,
                          bidirectional=True)
        self.gru_nobias = nn.GRU(input_size=inputs, hidden_size=hidden, bias=False)
        self.cell = nn.RNNCell(inputs, hidden, nonlinearity="relu")
        self.lcell = nn.LSTMCell(inputs, hidden)
        self.gcell = nn.GRUCell(inputs, hidden, bias=False)


class Attention(nn.Module):
    def __init__(self, d=16, heads=4):
        super().__init__()
        self.mha = nn.MultiheadAttention(d, heads)
        self.mha_kv = nn.MultiheadAttention(d, heads, kdim=8, vdim=12, add_bias_kv=True)
        self.mha_same = nn.MultiheadAttention(d, heads, kdim=d, vdim=d, bias=False)
        self.mha_nobias = nn.MultiheadAttention(d, heads, bias=False, batch_first=True)


class Encoders(nn.Module):
    def __init__(self, d=16, heads=2, depth=3):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=depth, norm=nn.LayerNorm(d))
        self.decoder = nn.TransformerDecoder(
            nn.TransformerDecoderLayer(d, heads, 24, bias=False, activation=nn.GELU()), 2)
        self.single = nn.TransformerEncoderLayer(d_model=d, nhead=heads, norm_first=True)


class SmallTransformer(nn.Module):
    def __init__(self, d_model=16):
        super().__init__()
        self.t = nn.Transformer(d_model, 2, num_encoder_layers=2, num_decoder_layers=1,
                                dim_feedforward=20, batch_first=True)
        self.custom = nn.Transformer(8, 2, custom_encoder=nn.Linear(8, 8), num_decoder_layers=1,
                                     dim_feedforward=4, bias=False)
