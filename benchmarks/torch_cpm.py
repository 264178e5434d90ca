"""The CPM network, its loss and its SGD step in PyTorch: a peer for speed comparisons.

Built from the same config fields as posemachines/models/cpm.py (``config.model``), so the released
6-stage network (experiments/cpm_mpii.py) and the small variants have the same layers:

  stage 1   trunk (conv k + ReLU [+ 3x3/2 ceil-mode max-pool]) -> head convs (+ ReLU, dropout)
            -> 1x1 conv to P+1 belief maps
  x'        a second trunk with its own weights, computed once
  stage t   conv(x') + ReLU, concat [that, b_{t-1}, center map avg-pooled (k = stride + 1, ceil)]
            -> convs + ReLU -> 1x1 conv to P+1 belief maps

Loss: per stage the Caffe Euclidean loss sum((b - target)^2) / (2 batch), summed over stages.
SGD with momentum, weight decay on weights only, and the release's learning-rate multipliers
(stage 1 x stage1_lr_mult, biases x bias_lr_mult), as posemachines/optim.py.

PyTorch is not a dependency of posemachines: this file is only imported by benchmarks/.
"""
from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


def _pool_out(size: int, window: int, stride: int) -> int:
  return math.ceil(max(size - window, 0) / stride) + 1


class Trunk(nn.Module):
  """conv k/w + ReLU [+ 3x3/2 ceil-mode max-pool] per block."""

  def __init__(self, in_ch, kernels, widths, pools):
    super().__init__()
    self.convs = nn.ModuleList()
    self.pools = list(pools)
    for k, w in zip(kernels, widths):
      self.convs.append(nn.Conv2d(in_ch, w, k, padding=k // 2))
      in_ch = w

  def forward(self, x):
    for conv, pool in zip(self.convs, self.pools):
      x = F.relu(conv(x))
      if pool:
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
    return x


class Stage1(nn.Module):

  def __init__(self, m, num_outputs):
    super().__init__()
    self.trunk = Trunk(3, m.trunk_kernels, m.trunk_widths, m.trunk_pools)
    self.head = nn.ModuleList()
    self.dropout = list(m.stage1_dropout)
    self.rate = float(m.dropout_rate)
    ch = m.trunk_widths[-1]
    for k, w in zip(m.stage1_kernels, m.stage1_widths):
      self.head.append(nn.Conv2d(ch, w, k, padding=k // 2))
      ch = w
    self.beliefs = nn.Conv2d(ch, num_outputs, 1)

  def forward(self, image):
    x = self.trunk(image)
    for conv, drop in zip(self.head, self.dropout):
      x = F.relu(conv(x))
      if drop and self.rate > 0:
        x = F.dropout(x, self.rate, self.training)
    return self.beliefs(x)


class StageT(nn.Module):

  def __init__(self, m, num_outputs):
    super().__init__()
    k = m.stage_feature_kernel
    self.features = nn.Conv2d(m.trunk_widths[-1], m.stage_feature_width, k, padding=k // 2)
    ch = m.stage_feature_width + num_outputs + (1 if m.use_center_map else 0)
    self.convs = nn.ModuleList()
    for k, w in zip(m.stage_kernels, m.stage_widths):
      self.convs.append(nn.Conv2d(ch, w, k, padding=k // 2))
      ch = w
    self.beliefs = nn.Conv2d(ch, num_outputs, 1)

  def forward(self, features, beliefs, center):
    parts = [F.relu(self.features(features)), beliefs]
    if center is not None:
      parts.append(center)
    x = torch.cat(parts, dim=1)
    for conv in self.convs:
      x = F.relu(conv(x))
    return self.beliefs(x)


class CPM(nn.Module):
  """Inputs NCHW: image [B, 3, H, W], center map [B, 1, H, W]; returns [T, B, P+1, h, w]."""

  def __init__(self, m, num_outputs: int):
    super().__init__()
    self.num_stages = int(m.num_stages)
    self.use_center_map = bool(m.use_center_map)
    self.stride = 2 ** sum(bool(p) for p in m.trunk_pools)
    self.stage1 = Stage1(m, num_outputs)
    if self.num_stages > 1:
      self.features = Trunk(3, m.trunk_kernels, m.trunk_widths, m.trunk_pools)
    self.later = nn.ModuleList([StageT(m, num_outputs) for _ in range(2, self.num_stages + 1)])

  def center_pool(self, center_map):
    # ceil-mode average pooling whose edge windows average only the pixels they cover (Caffe).
    s = self.stride
    return F.avg_pool2d(center_map, s + 1, s, ceil_mode=True, count_include_pad=False)

  def forward(self, image, center_map=None):
    beliefs = [self.stage1(image)]
    if self.num_stages > 1:
      features = self.features(image)
      center = self.center_pool(center_map) if self.use_center_map else None
      for stage in self.later:
        beliefs.append(stage(features, beliefs[-1], center))
    return torch.stack(beliefs)


def init_gaussian(model: nn.Module, std: float = 0.01, seed: int = 0) -> None:
  """The release's initialisation: weights N(0, std), biases 0."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith('bias'):
        p.zero_()
      else:
        p.copy_(torch.randn(p.shape, generator=gen) * std)


def euclidean_loss(beliefs, targets):
  """Per-stage Caffe Euclidean losses [T]: sum of squared differences / (2 batch)."""
  return ((beliefs - targets) ** 2).sum(dim=(1, 2, 3, 4)) / (2.0 * beliefs.shape[1])


def make_optimizer(model: CPM, optim) -> torch.optim.SGD:
  """SGD with momentum; weight decay on weights only; stage-1 and bias learning-rate multipliers.

  torch's SGD (v = momentum v + g + wd w; w -= lr v) is the update of posemachines/optim.py (optax
  add_decayed_weights, trace, scale by -lr x multiplier)."""
  groups = {}
  for name, p in model.named_parameters():
    bias = name.endswith('bias')
    mult = (optim.bias_lr_mult if bias else 1.0) * (
        optim.stage1_lr_mult if name.startswith('stage1.') else 1.0)
    key = (mult, bias)
    groups.setdefault(key, []).append(p)
  param_groups = [{'params': ps, 'lr': optim.learning_rate * mult,
                   'weight_decay': 0.0 if bias else optim.weight_decay}
                  for (mult, bias), ps in groups.items()]
  return torch.optim.SGD(param_groups, lr=optim.learning_rate, momentum=optim.momentum)


def inputs(images_uint8, crop_size: int, center_sigma: float):
  """uint8 NHWC crops -> (pixel / 256 - 0.5 NCHW, center map [B, 1, H, W] at the crop centre)."""
  x = images_uint8.permute(0, 3, 1, 2).float() / 256.0 - 0.5
  half = (crop_size - 1) / 2.0
  r = torch.arange(crop_size, dtype=torch.float32) - half
  g = torch.exp(-(r[None, :] ** 2 + r[:, None] ** 2) / (2.0 * center_sigma ** 2))
  return x, g.expand(x.shape[0], 1, crop_size, crop_size).contiguous()


class Trainer:
  """Model, optimizer and train/forward steps of one config; ``compile`` wraps the model's
  forward and loss in torch.compile (backward through AOTAutograd)."""

  def __init__(self, config, num_outputs: int, compile: bool = False, seed: int = 0,
               channels_last: bool = False):
    torch.manual_seed(seed)
    self.config = config
    self.model = CPM(config.model, num_outputs)
    init_gaussian(self.model, seed=seed)
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.model = self.model.to(memory_format=self.memory_format)
    self.opt = make_optimizer(self.model, config.optim)
    self.model.train()

    def loss_fn(x, c, targets):
      per_stage = euclidean_loss(self.model(x, c), targets)
      return per_stage.sum(), per_stage

    def forward_fn(x, c):
      return self.model(x, c)

    self._loss = torch.compile(loss_fn) if compile else loss_fn
    self._forward = torch.compile(forward_fn) if compile else forward_fn

  def prepare(self, images_uint8, targets):
    """Device inputs of one batch: normalised images, center map, targets [T, B, P+1, h, w]."""
    x, c = inputs(images_uint8, self.config.data.crop_size, self.config.targets.center_sigma)
    x = x.contiguous(memory_format=self.memory_format)
    c = c.contiguous(memory_format=self.memory_format)
    return x, c, targets

  def train_step(self, x, c, targets):
    self.model.train()
    self.opt.zero_grad(set_to_none=True)
    loss, per_stage = self._loss(x, c, targets)
    loss.backward()
    self.opt.step()
    return loss.detach()

  def forward(self, x, c):
    self.model.eval()
    with torch.inference_mode():
      out = self._forward(x, c)
    return out
