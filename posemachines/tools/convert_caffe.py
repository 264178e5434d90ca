"""The CPM release's Caffe models as posemachines models: a deploy .prototxt and a .caffemodel
-> a training workdir (config.json and a checkpoint) and an exported artifact.

Layer names (the release's deploy files) and where they go in the Flax CPM
(posemachines/models/cpm.py), for K trunk convolutions, H stage-1 head convolutions and M
convolutions per later stage (the release: K = 3, H = 3, M = 4):

  conv1_stage1 ... convK_stage1          stage1/trunk/conv1 ... convK (each with its max-pool)
  conv{K+1}_stage1 ... conv{K+H}_stage1  stage1/head1 ... headH
  conv{K+H+1}_stage1                     stage1/beliefs
  conv1_stage2 ... convK_stage2          features/conv1 ... convK (the shared image features)
  conv{K+1}_stage2, conv1_stageT (T>=3)  stageT/features
  Mconv1_stageT ... MconvM_stageT        stageT/conv1 ... convM
  Mconv{M+1}_stageT                      stageT/beliefs
  pool_center_lower                      the center map's average pooling (no weights)

The deploy is checked against the config layer by layer (kernel, padding, stride, widths, which
blob feeds which layer, ReLUs, 3x3/2 max-pools, the center map's pooling, each concat's order)
and the weights' shapes against the Flax parameters; any difference is an error naming the
layer. Caffe weights (out, in, kh, kw) become Flax kernels (kh, kw, in, out).

The release's conventions are folded into the weights, so that the converted model is an
ordinary posemachines CPM and ``evaluate`` and ``predict`` run it unchanged:
  - pixels: the release feeds BGR / 256 - 0.5; posemachines feeds RGB / 256 - 0.5, so the input
    channels of the two convolutions that read the image are reversed;
  - center map: a Gaussian of sigma 21 px at 368 x 368 (scaled with the deploy's input size),
    set as ``config.targets.center_sigma``;
  - output order: the release's channels (REFERENCE.md: head top, neck, r-shoulder, ... for the
    15-channel MPII / LSP models, the FLIC order for the 10-channel FLIC model, background last)
    are permuted to the config's part order (``config.data.parts``): every stage's belief
    convolution's outputs, and the belief block of every next stage's first convolution's inputs;
  - concat order: each stage's first convolution's input channels are reordered to the Flax
    order [features, previous beliefs, pooled center map] from the deploy's concat order.
artifact.json records the conversion under ``converted_from`` and the channel order under
``normalisation``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re

import numpy as np

from posemachines.core import errors, skeleton
from posemachines.core.errors import BadFile, ConfigMismatch, MissingData
from posemachines.tools import caffe_proto

RELEASE_INPUT = 368
RELEASE_CENTER_SIGMA = 21.0
# The released models' output channels (background appended), by their number.
RELEASE_OUTPUT_ORDER = {15: skeleton.CPM14.parts, 10: skeleton.FLIC.parts}
# The experiment config a deploy gets when none is given: (stages, output channels) -> name.
DEFAULT_CONFIGS = {(6, 15): 'cpm_mpii', (4, 10): 'cpm_flic'}


@dataclasses.dataclass(frozen=True)
class Mapped:
  """One Caffe convolution and the Flax module it fills."""
  caffe: str
  flax: tuple[str, ...]
  source: tuple                 # ('image',) | ('conv', name, pooled) | ('concat', stage)
  beliefs: bool = False         # a belief convolution: no ReLU, outputs in the release's order
  reads_image: bool = False


# --------------------------------------------------------------------------------- files --

def read_deploy(path: str) -> caffe_proto.Net:
  if not os.path.isfile(path):
    raise MissingData(f'{path}: no such file (expected a Caffe deploy .prototxt)')
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except UnicodeDecodeError:
    raise BadFile(f'{path} is not a text file; expected a Caffe deploy .prototxt (protobuf text '
                  'format, layer { ... } entries)') from None
  try:
    net = caffe_proto.parse_prototxt(text)
  except caffe_proto.ProtoError as e:
    raise BadFile(f'{path}: {e}; expected a Caffe deploy .prototxt') from None
  if not net.layers:
    raise BadFile(f'{path} defines no layers; expected a Caffe deploy .prototxt (layer { ... } '
                  'entries)')
  return net


def read_weights(path: str) -> caffe_proto.Net:
  if not os.path.isfile(path):
    raise MissingData(f'{path}: no such file (expected a Caffe .caffemodel)')
  with open(path, 'rb') as f:
    data = f.read()
  try:
    net = caffe_proto.decode_net(data)
  except caffe_proto.ProtoError as e:
    raise BadFile(f'{path} is not a Caffe model ({e}); expected a binary NetParameter '
                  '(.caffemodel)') from None
  if not any(l.blobs for l in net.layers):
    raise BadFile(f'{path} holds no layer with weights ({len(net.layers)} layers); expected a '
                  'binary NetParameter (.caffemodel) with trained blobs')
  return net


def load_config(value: str):
  """An experiment config by name (experiments/NAME.py) or path."""
  from posemachines.core import config_files
  path = config_files.resolve(value).partition(':')[0]
  spec = importlib.util.spec_from_file_location('_convert_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


# ---------------------------------------------------------------------------------- plan --

def plan(model_cfg) -> list[Mapped]:
  """Every Caffe convolution of a CPM with this ``config.model`` and its Flax module."""
  k, h, m = (len(model_cfg.trunk_kernels), len(model_cfg.stage1_kernels),
             len(model_cfg.stage_kernels))
  pools = [bool(p) for p in model_cfg.trunk_pools]
  out = []
  prev = None
  for i in range(1, k + 1):
    out.append(Mapped(f'conv{i}_stage1', ('stage1', 'trunk', f'conv{i}'),
                      ('image',) if i == 1 else ('conv', prev, pools[i - 2]), reads_image=i == 1))
    prev = out[-1].caffe
  for j in range(1, h + 1):
    out.append(Mapped(f'conv{k + j}_stage1', ('stage1', f'head{j}'),
                      ('conv', prev, pools[-1] if j == 1 else False)))
    prev = out[-1].caffe
  out.append(Mapped(f'conv{k + h + 1}_stage1', ('stage1', 'beliefs'),
                    ('conv', prev, pools[-1] if h == 0 else False), beliefs=True))
  if model_cfg.num_stages < 2:
    return out
  prev = None
  for i in range(1, k + 1):
    out.append(Mapped(f'conv{i}_stage2', ('features', f'conv{i}'),
                      ('image',) if i == 1 else ('conv', prev, pools[i - 2]), reads_image=i == 1))
    prev = out[-1].caffe
  trunk_out = prev
  for t in range(2, model_cfg.num_stages + 1):
    feature = f'conv{k + 1}_stage2' if t == 2 else f'conv1_stage{t}'
    out.append(Mapped(feature, (f'stage{t}', 'features'), ('conv', trunk_out, pools[-1])))
    prev = None
    for j in range(1, m + 1):
      out.append(Mapped(f'Mconv{j}_stage{t}', (f'stage{t}', f'conv{j}'),
                        ('concat', t) if j == 1 else ('conv', prev, False)))
      prev = out[-1].caffe
    out.append(Mapped(f'Mconv{m + 1}_stage{t}', (f'stage{t}', 'beliefs'),
                      ('concat', t) if m == 0 else ('conv', prev, False), beliefs=True))
  return out


def _belief_conv(mapped, t: int) -> str:
  """The Caffe name of stage t's belief convolution."""
  return next(mp.caffe for mp in mapped if mp.beliefs and
              mp.flax[0] == ('stage1' if t == 1 else f'stage{t}'))


def deploy_input(net: caffe_proto.Net):
  """(name, shape) of the deploy's input: the first net input or Input layer."""
  data = net.inputs[0] if net.inputs else next(
      (l.top[0] for l in net.layers if l.type == 'Input' and l.top), None)
  return data, (net.input_shape(data) if data else None)


def deploy_shape(net: caffe_proto.Net) -> tuple[int, int]:
  """(stages, output channels) of a release-style deploy: from its layer names."""
  stages = 1 + len({m.group(1) for l in net.layers
                    for m in [re.fullmatch(r'Mconv1_stage(\d+)', l.name)] if m})
  first = [(int(m.group(1)), l) for l in net.layers
           for m in [re.fullmatch(r'conv(\d+)_stage1', l.name)] if m and l.conv is not None]
  outputs = max(first, key=lambda x: x[0])[1].conv.num_output if first else 0
  return stages, outputs


# ----------------------------------------------------------------------------- checking --

class _Graph:
  """Which layer made each blob, looking through in-place and element-wise layers."""

  def __init__(self, net: caffe_proto.Net):
    self.net = net
    self.origin = {}
    self.inplace = {}
    for layer in net.layers:
      for top in layer.top:
        if top in layer.bottom:
          self.inplace.setdefault(top, []).append(layer)
        else:
          self.origin[top] = layer

  def source(self, blob: str):
    """(the layer that computed ``blob`` apart from ReLU / Dropout, whether a ReLU was applied,
    the blob name it made)."""
    relu = any(l.type == 'ReLU' for l in self.inplace.get(blob, []))
    layer = self.origin.get(blob)
    while layer is not None and layer.type in ('ReLU', 'Dropout') and layer.bottom:
      relu |= layer.type == 'ReLU'
      blob = layer.bottom[0]
      relu |= any(l.type == 'ReLU' for l in self.inplace.get(blob, []))
      layer = self.origin.get(blob)
    return layer, relu, blob


def _describe(layer) -> str:
  return 'a net input' if layer is None else f'{layer.name} ({layer.type})'


def check_deploy(net, model_cfg, mapped, stride: int, where: str, config_name: str):
  """Checks ``net`` against the config; returns {stage: concat order} and the input size."""
  layers = {l.name: l for l in net.layers}
  graph = _Graph(net)
  convs = {mp.caffe: mp for mp in mapped}
  mismatch = lambda msg: ConfigMismatch(f'{where}: {msg} (config {config_name})')

  # The input: 'data' of 1 x C x S x S, sliced into the image and the center map.
  data, shape = deploy_input(net)
  if not shape or len(shape) != 4 or shape[2] != shape[3]:
    raise BadFile(f'{where}: the input {data!r} has shape {shape}; expected a square '
                  '1 x 4 x S x S input (image, then center map)')
  size = int(shape[2])
  want_c = 4 if model_cfg.use_center_map else 3
  if shape[1] != want_c:
    raise mismatch(f'the input {data!r} has {shape[1]} channels; the config '
                   f'(model.use_center_map={model_cfg.use_center_map}) needs {want_c}')

  def image_source(layer, blob, index):
    if layer is None:
      return blob in net.inputs
    return (layer.type == 'Slice' and layer.bottom[:1] == [data] and
            layer.top.index(blob) == index and layer.slice_axis == 1 and
            layer.slice_points[:1] == [3])

  for mp in mapped:
    layer = layers.get(mp.caffe)
    if layer is None:
      raise BadFile(f'{where} has no layer {mp.caffe} (the config {config_name} needs it: '
                    f'{"/".join(mp.flax)}); layers: {", ".join(l.name for l in net.layers[:8])}'
                    f'{", ..." if len(net.layers) > 8 else ""}')
    if layer.type != 'Convolution' or layer.conv is None:
      raise BadFile(f'{where}: layer {mp.caffe} is a {layer.type} layer, expected a '
                    'Convolution')
    c = layer.conv
    kh, kw = c.kernel()
    if (kh, kw) != (kh, kh) or c.pads() != (kh // 2, kh // 2) or c.strides() != (1, 1) or \
        c.dilations() != (1, 1) or c.group != 1 or not c.bias_term:
      raise BadFile(f'{where}: layer {mp.caffe} is a {kh}x{kw} convolution with pad '
                    f'{c.pads()}, stride {c.strides()}, dilation {c.dilations()}, group '
                    f'{c.group}, bias {c.bias_term}; the CPM has square kernels, pad k // 2, '
                    'stride 1, no dilation or groups, and biases')
    if len(layer.bottom) != 1:
      raise BadFile(f'{where}: layer {mp.caffe} reads {len(layer.bottom)} blobs, expected 1')
    src, relu, blob = graph.source(layer.bottom[0])
    kind = mp.source[0]
    if kind == 'image':
      if relu or not image_source(src, blob, 0):
        raise BadFile(f'{where}: layer {mp.caffe} reads {layer.bottom[0]} from '
                      f'{_describe(src)}; expected the image (the first 3 channels of {data})')
    elif kind == 'conv':
      _, prev, pooled = mp.source
      if pooled:
        p = src.pool if src is not None and src.type == 'Pooling' else None
        if p is None or p.pool != 'MAX' or p.kernel() != (3, 3) or p.strides() != (2, 2) or \
            p.pads() != (0, 0) or p.global_pooling or relu:
          raise mismatch(f'layer {mp.caffe} reads {layer.bottom[0]} from {_describe(src)}; '
                         f'expected a 3x3 stride-2 max-pool of {prev} (model.trunk_pools)')
        src, relu, blob = graph.source(src.bottom[0])
      if src is None or src.name != prev:
        raise mismatch(f'layer {mp.caffe} reads {layer.bottom[0]} from {_describe(src)}; '
                       f'expected {prev}' + (' after a 3x3 stride-2 max-pool' if pooled else
                                             ' (no pooling between them)'))
      if not relu:
        raise BadFile(f'{where}: no ReLU follows {prev}; the CPM has a ReLU after every '
                      'convolution except the belief ones')
  for mp in mapped:
    if mp.beliefs:
      top = layers[mp.caffe].top[0]
      if graph.source(top)[1]:
        raise BadFile(f'{where}: a ReLU follows {mp.caffe}; the belief convolutions are linear')
  orders = {}
  center = layers.get('pool_center_lower')
  for mp in mapped:
    layer = layers[mp.caffe]
    if mp.source[0] != 'concat':
      continue
    t = mp.source[1]
    cat, relu, _ = graph.source(layer.bottom[0])
    if cat is None or cat.type != 'Concat' or cat.concat_axis != 1 or relu:
      raise BadFile(f'{where}: layer {mp.caffe} reads {layer.bottom[0]} from {_describe(cat)}; '
                    f'expected a Concat (axis 1) of stage {t}\'s features, stage {t - 1}\'s '
                    'beliefs' + (' and the pooled center map' if model_cfg.use_center_map else ''))
    feature = next(m.caffe for m in mapped if m.flax == (f'stage{t}', 'features'))
    beliefs = _belief_conv(mapped, t - 1)
    order = []
    for b in cat.bottom:
      s, r, blob = graph.source(b)
      name = s.name if s is not None else None
      if name == feature and r:
        order.append('features')
      elif name == beliefs and not r:
        order.append('beliefs')
      elif s is not None and s is center:
        order.append('center')
      else:
        order.append(f'{b} from {_describe(s)}' + (' after a ReLU' if r else ''))
    want = ['features', 'beliefs'] + (['center'] if model_cfg.use_center_map else [])
    if sorted(order) != sorted(want):
      raise mismatch(f'{cat.name} (read by {mp.caffe}) concatenates {", ".join(order)}; '
                     f'expected {feature} (with its ReLU), {beliefs} (no ReLU)'
                     + (' and pool_center_lower' if model_cfg.use_center_map else ''))
    orders[t] = order
  if model_cfg.use_center_map and model_cfg.num_stages > 1:
    p = center.pool if center is not None and center.type == 'Pooling' else None
    if p is None or p.pool != 'AVE' or p.kernel() != (stride + 1, stride + 1) or \
        p.strides() != (stride, stride) or p.pads() != (0, 0):
      raise BadFile(f'{where}: pool_center_lower is '
                    f'{_describe(center) if center is not None else "missing"}; expected a '
                    f'{stride + 1}x{stride + 1} stride-{stride} average pooling of the center map')
    src, relu, blob = graph.source(center.bottom[0])
    if relu or not image_source(src, blob, 1):
      raise BadFile(f'{where}: pool_center_lower reads {center.bottom[0]} from '
                    f'{_describe(src)}; expected the center map (channel 4 of {data})')
  return orders, size


def _check_widths(net, mapped, expected, where, config_name):
  layers = {l.name: l for l in net.layers}
  for mp in mapped:
    c = layers[mp.caffe].conv
    kh, kw, _, out = expected[mp.flax]
    if c.kernel() != (kh, kw) or c.num_output != out:
      raise ConfigMismatch(f'{where}: layer {mp.caffe} is a {c.kernel()[0]}x{c.kernel()[1]} '
                           f'convolution with {c.num_output} outputs; the config {config_name} '
                           f'has {kh}x{kw} with {out} ({"/".join(mp.flax)})')


# ----------------------------------------------------------------------------- converting --

def _blobs(weights: caffe_proto.Net, name: str, where: str):
  found = [l for l in weights.layers if l.name == name and l.blobs]
  if not found:
    with_blobs = [l.name for l in weights.layers if l.blobs]
    raise BadFile(f'{where} has no weights for layer {name} (layers with weights: '
                  f'{", ".join(with_blobs[:6])}{", ..." if len(with_blobs) > 6 else ""})')
  return found[0].blobs


def _array(blob, name: str, what: str, where: str) -> np.ndarray:
  count = int(np.prod(blob.shape)) if blob.shape else 0
  if blob.data.size != count:
    raise BadFile(f'{where}: layer {name}\'s {what} blob holds {blob.data.size} values for its '
                  f'shape {"x".join(map(str, blob.shape))}')
  return blob.data.reshape(blob.shape)


def permutation(parts: str, num_outputs: int, config_name: str) -> np.ndarray:
  """Config channel j <- release channel perm[j] (background last in both)."""
  release = RELEASE_OUTPUT_ORDER.get(num_outputs)
  if release is None:
    raise ConfigMismatch(f'the model outputs {num_outputs} channels; the release\'s models '
                         'output 15 (MPII / LSP) or 10 (FLIC)')
  skel = skeleton.get(parts)
  missing = [p for p in skel.parts if p not in release]
  if missing or len(skel.parts) != len(release):
    raise ConfigMismatch(f'config {config_name}: data.parts={parts!r} ({len(skel.parts)} parts) '
                         f'is not a reordering of the release\'s {len(release)} output parts '
                         f'({", ".join(release)})')
  return np.asarray([release.index(p) for p in skel.parts] + [len(release)])


def convert_params(deploy, weights, config, deploy_path: str = 'deploy',
                   weights_path: str = 'weights', config_name: str = 'given'):
  """The Flax params of ``config``'s CPM from a deploy and its weights (numpy arrays), with the
  release's conventions folded in; and a record of what was done."""
  import jax
  import jax.numpy as jnp
  from posemachines import models
  m = config.model
  if m.name != 'cpm':
    raise ConfigMismatch(f'config {config_name} is a {m.name!r} model; Caffe CPMs convert to '
                         "model.name='cpm'")
  if m.batch_norm:
    raise ConfigMismatch(f'config {config_name} has model.batch_norm=True; the release has no '
                         'BatchNorm')
  model = models.build(config)
  crop = config.data.crop_size
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, crop, crop, 3)),
                          jnp.zeros((1, crop, crop, 1)))['params']
  mapped = plan(m)
  expected = {mp.flax: _at(shapes, mp.flax)['kernel'].shape for mp in mapped}
  orders, size = check_deploy(deploy, m, mapped, model.stride, deploy_path, config_name)
  if size != crop:
    raise ConfigMismatch(f'{deploy_path}: the input is {size} x {size} px; config {config_name} '
                         f'has data.crop_size={crop} (release_config sets it from the deploy)')
  _check_widths(deploy, mapped, expected, deploy_path, config_name)
  num_out = expected[mapped[next(i for i, mp in enumerate(mapped) if mp.beliefs)].flax][3]
  perm = permutation(config.data.parts, num_out, config_name)
  fw = m.stage_feature_width
  sizes = {'features': fw, 'beliefs': num_out, 'center': 1}
  params = {}
  for mp in mapped:
    blobs = _blobs(weights, mp.caffe, weights_path)
    if len(blobs) != 2:
      raise BadFile(f'{weights_path}: layer {mp.caffe} holds {len(blobs)} blobs; expected 2 '
                    '(weights, bias)')
    kh, kw, cin, cout = expected[mp.flax]
    w = _array(blobs[0], mp.caffe, 'weights', weights_path)
    b = _array(blobs[1], mp.caffe, 'bias', weights_path)
    if w.shape != (cout, cin, kh, kw):
      raise BadFile(f'{weights_path}: layer {mp.caffe} holds weights of shape '
                    f'{"x".join(map(str, w.shape))} (out, in, kh, kw); the deploy and config '
                    f'{config_name} need {cout}x{cin}x{kh}x{kw}')
    if b.size != cout or b.shape not in ((cout,), (1, 1, 1, cout), (1, cout)):
      raise BadFile(f'{weights_path}: layer {mp.caffe} holds a bias of shape '
                    f'{"x".join(map(str, b.shape))}; expected {cout}')
    kernel = w.transpose(2, 3, 1, 0).astype(np.float32)           # (kh, kw, in, out)
    bias = b.reshape(cout).astype(np.float32)
    if mp.reads_image:
      kernel = kernel[:, :, ::-1, :]                              # BGR -> RGB inputs
    if mp.source[0] == 'concat':
      order = orders[mp.source[1]]
      offsets, at = {}, 0
      for role in order:
        offsets[role] = at
        at += sizes[role]
      idx = np.concatenate([offsets['features'] + np.arange(fw), offsets['beliefs'] + perm]
                           + ([[offsets['center']]] if 'center' in offsets else []))
      kernel = kernel[:, :, idx, :]
    if mp.beliefs:
      kernel, bias = kernel[..., perm], bias[perm]
    _put(params, mp.flax, {'kernel': np.ascontiguousarray(kernel), 'bias': bias})
  unused = sorted({l.name for l in weights.layers if l.blobs} - {mp.caffe for mp in mapped})
  record = {'layers': len(mapped), 'size': size, 'concat_orders': {str(k): v for k, v in
                                                                     orders.items()},
            'release_output_order': list(RELEASE_OUTPUT_ORDER[num_out]) + ['background'],
            'unused_layers_with_weights': unused}
  return params, record


def _at(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def _put(tree, path, value):
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def release_config(config, size: int):
  """``config`` set to the release's conventions for a deploy of input ``size``."""
  from posemachines.core import overrides
  return overrides.derive(config, **{'data.crop_size': int(size),
                                     'targets.center_sigma': RELEASE_CENTER_SIGMA * size /
                                     RELEASE_INPUT})


def write_workdir(config, params, workdir: str, step: int = 0) -> None:
  """A training workdir holding ``params``: config.json and one checkpoint at ``step``."""
  import jax
  import jax.numpy as jnp
  from posemachines.training import checkpoint, optim
  from posemachines.training.step import TrainState
  if os.path.isdir(os.path.join(workdir, 'checkpoints')) and \
      os.listdir(os.path.join(workdir, 'checkpoints')):
    raise errors.BadFlag(f'{workdir} already holds checkpoints; give another --workdir')
  os.makedirs(workdir, exist_ok=True)
  params = jax.tree.map(jnp.asarray, params)
  tx, _ = optim.make(config.optim, params, config.num_train_steps, config.frozen)
  state = TrainState(step=jnp.asarray(step, jnp.int32), params=params,
                     opt_state=tx.init(params), model_state={})
  mngr = checkpoint.manager(workdir, config.keep_checkpoints)
  checkpoint.save(mngr, step, state, force=True)
  mngr.wait_until_finished()
  mngr.close()
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2))


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def convert(prototxt: str, caffemodel: str, output: str, config=None, workdir: str | None = None,
            platforms=None, config_name: str | None = None) -> dict:
  """Converts a release deploy + caffemodel: a workdir (default ``OUTPUT_workdir``) and an
  exported artifact in ``output``. ``config``: a ConfigDict, an experiment name or path, or None
  (by the deploy: 6 stages / 15 outputs -> cpm_mpii, 4 stages / 10 outputs -> cpm_flic)."""
  deploy = read_deploy(prototxt)
  weights = read_weights(caffemodel)
  if config is None:
    shape = deploy_shape(deploy)
    if shape not in DEFAULT_CONFIGS:
      raise errors.BadFlag(f'{prototxt} has {shape[0]} stages and {shape[1]} outputs, not a '
                           'released model\'s shape (6 / 15 or 4 / 10); give --config')
    config = config_name = DEFAULT_CONFIGS[shape]
  if isinstance(config, str):
    config_name = config_name or config
    config = load_config(config)
  config_name = config_name or 'given'
  _, shape = deploy_input(deploy)
  size = int(shape[2]) if shape and len(shape) == 4 else config.data.crop_size
  config = release_config(config, size)
  params, record = convert_params(deploy, weights, config, prototxt, caffemodel, config_name)
  m = re.search(r'iter_(\d+)', os.path.basename(caffemodel))
  step = int(m.group(1)) if m else 0
  workdir = workdir or output.rstrip('/\\') + '_workdir'
  write_workdir(config, params, workdir, step)
  record.update({'prototxt': os.path.abspath(prototxt), 'caffemodel': os.path.abspath(caffemodel),
                 'caffemodel_sha256': _sha256(caffemodel), 'config': config_name,
                 'parts': config.data.parts, 'iteration': step,
                 'conventions': 'the network reads RGB / 256 - 0.5: the input channels of the '
                                'convolutions that read the image are reversed (the release '
                                'feeds BGR); center map sigma '
                                f'{config.targets.center_sigma:g} px at {size} px (the '
                                f'release: {RELEASE_CENTER_SIGMA:g} at {RELEASE_INPUT}); '
                                'outputs permuted from the release\'s order to '
                                f'{config.data.parts!r}; each stage\'s concat reordered to '
                                '[features, beliefs, center map]'})
  with open(os.path.join(workdir, 'converted_from.json'), 'w') as f:
    json.dump(record, f, indent=2)
  from posemachines.tools import artifact, export
  export.export(workdir, output, tuple(platforms or export.PLATFORMS))
  meta_path = os.path.join(output, artifact.META)
  with open(meta_path) as f:
    meta = json.load(f)
  meta['normalisation']['channels'] = ('RGB crops; the converted Caffe network was trained on '
                                       'BGR, folded into its first convolutions')
  meta['converted_from'] = record
  with open(meta_path, 'w') as f:
    json.dump(meta, f, indent=2)
  num = sum(int(np.prod(x.shape)) for x in _leaves(params))
  return {'artifact': output, 'workdir': workdir, 'config': config_name,
          'parts': config.data.parts, 'stages': int(config.model.num_stages),
          'parameters': num, 'layers': record['layers'], 'input_size': size,
          'unused_layers_with_weights': record['unused_layers_with_weights']}


def _leaves(tree):
  if isinstance(tree, dict):
    for v in tree.values():
      yield from _leaves(v)
  else:
    yield tree
