"""Converting Caffe CPMs: small deploy files written here with random weights, converted, and the
JAX forward checked against a NumPy implementation of Caffe's layers (convolution, ReLU,
ceil-mode max and average pooling, concat, slice) written from Caffe's definitions.

The networks keep the release's layout and layer names at 40 x 40 with narrow widths and 3 x 3
kernels: 40 -> 20 -> 10 -> 5 with ceil-mode max-pools (floor would give 19 -> 9 -> 4), and the
9 x 8 center-map pooling ends in a partial window (ceil(31 / 8) + 1 = 5).
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from posemachines.core import configs, errors, skeleton
from posemachines.tools import caffe_proto, convert_caffe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 40


# ------------------------------------------------------------------ a deploy, as a spec --

def small_spec(stages=3, outputs=15, concat_orders=None, relu_after_beliefs=False):
  """Layers (dicts) of a release-style deploy. ``concat_orders``: {stage: [roles]}."""
  L = []
  L.append(dict(name='image', type='Slice', bottom=['data'], top=['image', 'center_map'],
                slice=3))
  L.append(dict(name='pool_center_lower', type='Pooling', bottom=['center_map'],
                top=['pool_center_lower'], pool=('AVE', 9, 8)))

  def conv(name, bottom, out, k, relu=True):
    L.append(dict(name=name, type='Convolution', bottom=[bottom], top=[name], conv=(out, k)))
    if relu:
      L.append(dict(name='relu_' + name, type='ReLU', bottom=[name], top=[name]))
    return name

  def pool(name, bottom):
    L.append(dict(name=name, type='Pooling', bottom=[bottom], top=[name], pool=('MAX', 3, 2)))
    return name

  x = 'image'
  for i, w in enumerate((6, 5, 4)):
    x = pool(f'pool{i + 1}_stage1', conv(f'conv{i + 1}_stage1', x, w, 3))
  x = conv('conv4_stage1', x, 5, 3)
  x = conv('conv5_stage1', x, 6, 3)
  L.append(dict(name='drop5_stage1', type='Dropout', bottom=[x], top=[x]))
  x = conv('conv6_stage1', x, 7, 1)
  beliefs = conv('conv7_stage1', x, outputs, 1, relu=relu_after_beliefs)
  x = 'image'
  for i, w in enumerate((6, 5, 4)):
    x = pool(f'pool{i + 1}_stage2', conv(f'conv{i + 1}_stage2', x, w, 3))
  features = x
  for t in range(2, stages + 1):
    f = conv('conv4_stage2' if t == 2 else f'conv1_stage{t}', features, 4, 3)
    blobs = {'features': f, 'beliefs': beliefs, 'center': 'pool_center_lower'}
    order = (concat_orders or {}).get(t, ['features', 'beliefs', 'center'])
    L.append(dict(name=f'concat_stage{t}', type='Concat', bottom=[blobs[r] for r in order],
                  top=[f'concat_stage{t}']))
    x = f'concat_stage{t}'
    for j, w in enumerate((5, 5, 6, 6)):
      x = conv(f'Mconv{j + 1}_stage{t}', x, w, 3 if j < 3 else 1)
    beliefs = conv(f'Mconv5_stage{t}', x, outputs, 1, relu=False)
  return L


def prototxt(spec, legacy=False):
  """The spec in protobuf text format (``layers`` with V1 type names when ``legacy``)."""
  v1 = {'Slice': 'SLICE', 'Pooling': 'POOLING', 'Convolution': 'CONVOLUTION', 'ReLU': 'RELU',
        'Concat': 'CONCAT', 'Dropout': 'DROPOUT'}
  out = ['name: "small_cpm"', 'input: "data"', 'input_dim: 1', 'input_dim: 4',
         f'input_dim: {SIZE}', f'input_dim: {SIZE}']
  for l in spec:
    body = [f'  name: "{l["name"]}"',
            f'  type: {v1[l["type"]]}' if legacy else f'  type: "{l["type"]}"']
    body += [f'  bottom: "{b}"' for b in l['bottom']] + [f'  top: "{t}"' for t in l['top']]
    if 'conv' in l:
      n, k = l['conv']
      body += ['  param { lr_mult: 1 decay_mult: 1 }',
               f'  convolution_param {{ num_output: {n} pad: {k // 2} kernel_size: {k}',
               '    weight_filler { type: "gaussian" std: 0.01 } }']
    if 'pool' in l:
      m, k, s = l['pool']
      body.append(f'  pooling_param {{ pool: {m} kernel_size: {k} stride: {s} }}')
    if 'slice' in l:
      body.append(f'  slice_param {{ slice_point: {l["slice"]} axis: 1 }}')
    if l['type'] == 'Concat':
      body.append('  concat_param { axis: 1 }' if not legacy else '  concat_param { '
                  'concat_dim: 1 }')
    out.append(('layers {' if legacy else 'layer {') + '\n' + '\n'.join(body) + '\n}')
  return '\n'.join(out) + '\n'


# ------------------------------------------------------------- Caffe's layers in NumPy --

def caffe_conv(x, w, b, pad):
  """x [C, H, W], w [O, C, k, k]: Caffe's convolution (cross-correlation), stride 1."""
  k = w.shape[-1]
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
  win = sliding_window_view(xp, (k, k), axis=(1, 2))        # [C, Ho, Wo, k, k]
  return np.einsum('chwij,ocij->ohw', win, w) + b[:, None, None]


def caffe_pool(x, method, k, s, pad=0):
  """Caffe's pooling: output size ceil((H + 2 pad - k) / s) + 1 (less one if the last window
  starts in the padding); AVE divides by the window size clipped to H + pad."""
  c, h, w = x.shape
  ho = int(math.ceil((h + 2 * pad - k) / s)) + 1
  wo = int(math.ceil((w + 2 * pad - k) / s)) + 1
  if pad and (ho - 1) * s >= h + pad:
    ho -= 1
  if pad and (wo - 1) * s >= w + pad:
    wo -= 1
  out = np.zeros((c, ho, wo))
  for i in range(ho):
    for j in range(wo):
      hs, ws = i * s - pad, j * s - pad
      he, we = min(hs + k, h + pad), min(ws + k, w + pad)
      size = (he - hs) * (we - ws)
      hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
      win = x[:, hs:he, ws:we]
      out[:, i, j] = win.max(axis=(1, 2)) if method == 'MAX' else win.sum(axis=(1, 2)) / size
  return out


def caffe_forward(spec, data, weights):
  """Runs the spec on data [4, H, W]; returns every blob."""
  blobs = {'data': data}
  for l in spec:
    t = l['type']
    if t == 'Slice':
      x = blobs[l['bottom'][0]]
      blobs[l['top'][0]], blobs[l['top'][1]] = x[:l['slice']], x[l['slice']:]
    elif t == 'Convolution':
      w, b = weights[l['name']]
      blobs[l['top'][0]] = caffe_conv(blobs[l['bottom'][0]], w, b, l['conv'][1] // 2)
    elif t == 'ReLU':
      blobs[l['top'][0]] = np.maximum(blobs[l['bottom'][0]], 0)
    elif t == 'Pooling':
      blobs[l['top'][0]] = caffe_pool(blobs[l['bottom'][0]], *l['pool'])
    elif t == 'Concat':
      blobs[l['top'][0]] = np.concatenate([blobs[b] for b in l['bottom']], axis=0)
    elif t == 'Dropout':
      pass                                               # test phase: identity
  return blobs


def random_weights(spec, seed=0):
  """Weights for every convolution (in-channels found by running the spec on zeros)."""
  rng = np.random.RandomState(seed)
  weights, channels = {}, {'data': 4, 'image': 3, 'center_map': 1, 'pool_center_lower': 1}
  for l in spec:
    if l['type'] == 'Convolution':
      n, k = l['conv']
      c = channels[l['bottom'][0]]
      weights[l['name']] = (rng.normal(0, 1.5 / math.sqrt(c * k * k), (n, c, k, k)),
                            rng.normal(0, 0.2, n))
      channels[l['top'][0]] = n
    elif l['type'] == 'Concat':
      channels[l['top'][0]] = sum(channels[b] for b in l['bottom'])
    elif l['type'] in ('Pooling', 'ReLU', 'Dropout'):
      channels[l['top'][0]] = channels[l['bottom'][0]]
  return weights


def caffemodel(spec, weights, legacy=False, packed=True, extra=()):
  """The trained net as Caffe saves it: every layer, the convolutions with their blobs."""
  layers = []
  for l in list(spec) + list(extra):
    blobs = []
    if l['name'] in weights:
      w, b = weights[l['name']]
      blobs = [caffe_proto.Blob(w.shape, w.ravel().astype(np.float32)),
               caffe_proto.Blob(b.shape, b.astype(np.float32))]
    layers.append(caffe_proto.Layer(
        name=l['name'], type=l['type'], bottom=list(l['bottom']), top=list(l['top']),
        blobs=blobs,
        conv=caffe_proto.ConvParam(l['conv'][0], pad=[l['conv'][1] // 2],
                                   kernel_size=[l['conv'][1]]) if 'conv' in l else None,
        pool=caffe_proto.PoolParam(l['pool'][0], [l['pool'][1]], [l['pool'][2]])
        if 'pool' in l else None,
        slice_points=[l['slice']] if 'slice' in l else []))
  net = caffe_proto.Net('small_cpm', layers)
  return caffe_proto.encode_net(net, legacy=legacy, packed=packed)


def small_config(stages=3, parts='lsp'):
  c = configs.cpm_release(num_stages=stages)
  c.model.update(dict(trunk_kernels=(3, 3, 3), trunk_widths=(6, 5, 4),
                      stage1_kernels=(3, 3, 1), stage1_widths=(5, 6, 7),
                      stage_feature_kernel=3, stage_feature_width=4,
                      stage_kernels=(3, 3, 3, 1), stage_widths=(5, 5, 6, 6)))
  c.data.parts = parts
  c.data.crop_size = 64                    # replaced by the deploy's input size
  return c


def inputs(crops, sigma):
  """The release's input for uint8 RGB crops: BGR / 256 - 0.5 and the center map, [4, S, S]."""
  out = []
  for crop in crops:
    s = crop.shape[0]
    bgr = crop[..., ::-1].astype(np.float64) / 256.0 - 0.5
    yy, xx = np.mgrid[:s, :s]
    half = (s - 1) / 2.0
    centre = np.exp(-((xx - half) ** 2 + (yy - half) ** 2) / (2.0 * sigma ** 2))
    out.append(np.concatenate([bgr.transpose(2, 0, 1), centre[None]], axis=0))
  return out


def release_beliefs(spec, weights, crops, sigma, stages):
  """Every stage's belief maps from NumPy Caffe: [T, B, C, h, w] in the release's order."""
  names = ['conv7_stage1'] + [f'Mconv5_stage{t}' for t in range(2, stages + 1)]
  runs = [caffe_forward(spec, x, weights) for x in inputs(crops, sigma)]
  return np.stack([np.stack([r[n] for r in runs]) for n in names])


def to_config_order(release, parts):
  """[..., C, h, w] release channels -> [..., h, w, C] in ``parts`` order (background last)."""
  order = convert_caffe.RELEASE_OUTPUT_ORDER[release.shape[-3]]
  perm = [order.index(p) for p in skeleton.get(parts).parts] + [len(order)]
  return np.moveaxis(release[..., perm, :, :], -3, -1)


def _crops(n, seed=1):
  return np.random.RandomState(seed).randint(0, 256, (n, SIZE, SIZE, 3)).astype(np.uint8)


def write(tmp_path, spec, weights, legacy=False, packed=True, name='pose_iter_1234.caffemodel',
          extra=()):
  deploy = tmp_path / 'pose_deploy.prototxt'
  deploy.write_text(prototxt(spec, legacy))
  model = tmp_path / name
  model.write_bytes(caffemodel(spec, weights, legacy, packed, extra))
  return str(deploy), str(model)


# ---------------------------------------------------------------------------------- tests --

def test_numpy_caffe_pool_sizes():
  """The reference's own arithmetic: ceil-mode output sizes and clipped average windows."""
  x = np.arange(2 * 40 * 40, dtype=np.float64).reshape(2, 40, 40)
  assert caffe_pool(x, 'MAX', 3, 2).shape == (2, 20, 20)
  assert caffe_pool(x, 'AVE', 9, 8).shape == (2, 5, 5)
  avg = caffe_pool(np.ones((1, 40, 40)), 'AVE', 9, 8)
  assert np.allclose(avg, 1.0)                      # partial windows average what they cover
  assert caffe_pool(x, 'MAX', 3, 2)[0, -1, -1] == x[0, 39, 39]


def test_convert_matches_numpy_caffe(tmp_path):
  """Full conversion of a 3-stage, 15-output deploy (stage 3's concat in another order) to the
  LSP part order: the artifact and the workdir both equal NumPy Caffe on BGR inputs."""
  from posemachines.tools import artifact, loading
  spec = small_spec(3, 15, concat_orders={3: ['beliefs', 'center', 'features']})
  weights = random_weights(spec)
  extra = [dict(name='unused_conv', type='Convolution', bottom=['image'], top=['unused_conv'],
                conv=(2, 1))]
  weights_x = dict(weights, unused_conv=(np.ones((2, 3, 1, 1)), np.zeros(2)))
  deploy, model = write(tmp_path, spec, weights_x, extra=extra)
  out = convert_caffe.convert(deploy, model, str(tmp_path / 'art'), small_config(3, 'lsp'),
                              platforms=('cpu',), config_name='small')
  assert out['workdir'] == str(tmp_path / 'art_workdir')
  assert out['unused_layers_with_weights'] == ['unused_conv']
  assert out['layers'] == 7 + 3 + 2 * 6 and out['input_size'] == SIZE
  sigma = 21.0 * SIZE / 368
  crops = _crops(2)
  want = to_config_order(release_beliefs(spec, weights, crops, sigma, 3), 'lsp')
  assert want.shape == (3, 2, 5, 5, 15)
  art = loading.load(str(tmp_path / 'art'))
  got = np.asarray(art.forward(crops))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  assert np.abs(want).max() > 0.5                   # not a trivially small output
  ckpt = loading.load(out['workdir'])
  assert ckpt.source.endswith('(step 1234)')
  np.testing.assert_allclose(np.asarray(ckpt.forward(crops)), want, rtol=1e-4, atol=1e-4)
  with open(os.path.join(tmp_path / 'art', artifact.META)) as f:
    meta = json.load(f)
  assert meta['skeleton']['name'] == 'lsp' and meta['input_size'] == SIZE
  assert meta['config']['targets']['center_sigma'] == pytest.approx(sigma)
  assert meta['normalisation']['pixels'] == 'x / 256 - 0.5'
  assert 'BGR' in meta['normalisation']['channels']
  conv = meta['converted_from']
  assert conv['concat_orders'] == {'2': ['features', 'beliefs', 'center'],
                                   '3': ['beliefs', 'center', 'features']}
  assert conv['release_output_order'][:3] == ['head_top', 'neck', 'r_shoulder']
  assert conv['iteration'] == 1234 and len(conv['caffemodel_sha256']) == 64
  # The BGR order matters: the same crops with red and blue swapped give other maps.
  assert not np.allclose(np.asarray(art.forward(crops[..., ::-1].copy())), want, atol=1e-3)


def test_legacy_layers_unpacked_floats_flic_order(tmp_path):
  """A FLIC-shaped (10 outputs) 2-stage net in legacy V1 ``layers`` (prototxt and binary, 4-D
  legacy blob shapes, floats one by one), converted to the FLIC part order."""
  import jax
  from posemachines import models
  from posemachines.objectives import per_model
  spec = small_spec(2, 10)
  weights = random_weights(spec, seed=3)
  deploy, model = write(tmp_path, spec, weights, legacy=True, packed=False)
  net = caffe_proto.decode_net(open(model, 'rb').read())
  assert net.legacy and net.layers[2].blobs[1].shape == (1, 1, 1, 6)
  parsed = convert_caffe.read_deploy(deploy)
  assert parsed.legacy and parsed.layers[0].type == 'Slice'
  config = convert_caffe.release_config(small_config(2, 'flic'), SIZE)
  params, record = convert_caffe.convert_params(parsed, net, config)
  assert record['release_output_order'] == list(skeleton.FLIC.parts) + ['background']
  cpm = models.build(config)
  crops = _crops(1, seed=5)
  x, c = per_model.model_inputs(crops, SIZE, config.targets.center_sigma)
  got = np.asarray(jax.jit(lambda p: cpm.apply({'params': p}, x, c))(params))
  want = to_config_order(release_beliefs(spec, weights, crops, config.targets.center_sigma, 2),
                         'flic')
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_release_orders_are_reference_md():
  assert convert_caffe.RELEASE_OUTPUT_ORDER[15] == (
      'head_top', 'neck', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_shoulder', 'l_elbow', 'l_wrist',
      'r_hip', 'r_knee', 'r_ankle', 'l_hip', 'l_knee', 'l_ankle')
  assert convert_caffe.RELEASE_OUTPUT_ORDER[10] == (
      'l_shoulder', 'l_elbow', 'l_wrist', 'r_shoulder', 'r_elbow', 'r_wrist', 'l_hip', 'r_hip',
      'nose')
  perm = convert_caffe.permutation('lsp', 15, 'x')
  assert perm.tolist() == [10, 9, 8, 11, 12, 13, 4, 3, 2, 5, 6, 7, 1, 0, 14]
  full = configs.cpm_release(6)
  names = [m.caffe for m in convert_caffe.plan(full.model)]
  assert names[:7] == [f'conv{i}_stage1' for i in range(1, 8)]
  assert names[7:11] == ['conv1_stage2', 'conv2_stage2', 'conv3_stage2', 'conv4_stage2']
  assert names[11:16] == [f'Mconv{j}_stage2' for j in range(1, 6)]
  assert names[16] == 'conv1_stage3' and names[-1] == 'Mconv5_stage6' and len(names) == 40


def test_wire_format_against_the_protobuf_library(tmp_path):
  """Messages built with the protobuf library (a schema made here from caffe.proto's field
  numbers) read back with caffe_proto, and caffe_proto's bytes parsed by the library."""
  pytest.importorskip('google.protobuf')
  from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
  F = descriptor_pb2.FieldDescriptorProto
  fdp = descriptor_pb2.FileDescriptorProto(name='mini_caffe.proto', package='mini',
                                           syntax='proto2')

  def msg(name, fields):
    m = fdp.message_type.add(name=name)
    for fname, num, kind, label, type_name, packed in fields:
      f = m.field.add(name=fname, number=num, type=kind, label=label)
      if type_name:
        f.type_name = '.mini.' + type_name
      if packed:
        f.options.packed = True

  opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
  msg('BlobShape', [('dim', 1, F.TYPE_INT64, rep, None, True)])
  msg('BlobProto', [('shape', 7, F.TYPE_MESSAGE, opt, 'BlobShape', False),
                    ('data', 5, F.TYPE_FLOAT, rep, None, True),
                    ('num', 1, F.TYPE_INT64, opt, None, False),
                    ('channels', 2, F.TYPE_INT64, opt, None, False),
                    ('height', 3, F.TYPE_INT64, opt, None, False),
                    ('width', 4, F.TYPE_INT64, opt, None, False)])
  msg('ConvolutionParameter', [('num_output', 1, F.TYPE_UINT32, opt, None, False),
                               ('pad', 3, F.TYPE_UINT32, rep, None, False),
                               ('kernel_size', 4, F.TYPE_UINT32, rep, None, False)])
  msg('LayerParameter', [('name', 1, F.TYPE_STRING, opt, None, False),
                         ('type', 2, F.TYPE_STRING, opt, None, False),
                         ('bottom', 3, F.TYPE_STRING, rep, None, False),
                         ('top', 4, F.TYPE_STRING, rep, None, False),
                         ('blobs', 7, F.TYPE_MESSAGE, rep, 'BlobProto', False),
                         ('convolution_param', 106, F.TYPE_MESSAGE, opt,
                          'ConvolutionParameter', False)])
  msg('V1LayerParameter', [('bottom', 2, F.TYPE_STRING, rep, None, False),
                           ('top', 3, F.TYPE_STRING, rep, None, False),
                           ('name', 4, F.TYPE_STRING, opt, None, False),
                           ('type', 5, F.TYPE_INT32, opt, None, False),
                           ('blobs', 6, F.TYPE_MESSAGE, rep, 'BlobProto', False)])
  msg('NetParameter', [('name', 1, F.TYPE_STRING, opt, None, False),
                       ('layers', 2, F.TYPE_MESSAGE, rep, 'V1LayerParameter', False),
                       ('layer', 100, F.TYPE_MESSAGE, rep, 'LayerParameter', False)])
  pool = descriptor_pool.DescriptorPool()
  pool.Add(fdp)
  Net = message_factory.GetMessageClass(pool.FindMessageTypeByName('mini.NetParameter'))
  rng = np.random.RandomState(0)
  w = rng.normal(size=(3, 2, 5, 5)).astype(np.float32)
  b = rng.normal(size=3).astype(np.float32)

  net = Net(name='n')
  layer = net.layer.add(name='conv1_stage1', type='Convolution', bottom=['image'],
                        top=['conv1_stage1'])
  layer.convolution_param.num_output = 3
  layer.convolution_param.pad.append(2)
  layer.convolution_param.kernel_size.append(5)
  blob = layer.blobs.add(data=w.ravel().tolist())
  blob.shape.dim.extend(w.shape)
  layer.blobs.add(data=b.tolist()).shape.dim.append(3)
  old = net.layers.add(name='legacy', type=4, bottom=['x'], top=['legacy'])
  old.blobs.add(num=3, channels=2, height=5, width=5, data=w.ravel().tolist())
  back = caffe_proto.decode_net(net.SerializeToString())
  conv = back.layers[0]
  assert (conv.name, conv.type, conv.bottom, conv.top) == ('conv1_stage1', 'Convolution',
                                                          ['image'], ['conv1_stage1'])
  assert conv.conv.num_output == 3 and conv.conv.pads() == (2, 2) and conv.conv.kernel() == (5, 5)
  assert conv.blobs[0].shape == (3, 2, 5, 5) and conv.blobs[1].shape == (3,)
  np.testing.assert_array_equal(conv.blobs[0].data.reshape(w.shape), w)
  np.testing.assert_array_equal(conv.blobs[1].data, b)
  assert back.layers[1].type == 'Convolution' and back.layers[1].blobs[0].shape == (3, 2, 5, 5)

  for legacy in (False, True):
    mine = caffe_proto.Net('m', [caffe_proto.Layer(
        'c', 'Convolution', ['image'], ['c'],
        [caffe_proto.Blob(w.shape, w.ravel()), caffe_proto.Blob((3,), b)],
        conv=caffe_proto.ConvParam(3, pad=[2], kernel_size=[5]))])
    parsed = Net.FromString(caffe_proto.encode_net(mine, legacy=legacy))
    got = parsed.layers[0] if legacy else parsed.layer[0]
    assert got.name == 'c' and list(got.bottom) == ['image']
    if legacy:
      assert got.type == 4 and (got.blobs[0].num, got.blobs[0].width) == (3, 5)
      assert (got.blobs[1].num, got.blobs[1].width) == (1, 3)
    else:
      assert got.type == 'Convolution' and list(got.blobs[0].shape.dim) == [3, 2, 5, 5]
      assert got.convolution_param.kernel_size[0] == 5
    np.testing.assert_array_equal(np.asarray(got.blobs[0].data, np.float32), w.ravel())


def _convert_params(tmp_path, spec, weights, config=None, deploy_text=None):
  deploy, model = write(tmp_path, spec, weights)
  if deploy_text is not None:
    open(deploy, 'w').write(deploy_text)
  config = convert_caffe.release_config(config or small_config(2, 'cpm14'), SIZE)
  return convert_caffe.convert_params(convert_caffe.read_deploy(deploy),
                                      convert_caffe.read_weights(model), config, deploy, model,
                                      'small')


def _one_line(e):
  assert '\n' not in str(e.value)
  return str(e.value)


def test_missing_and_misshaped_blobs(tmp_path):
  spec = small_spec(2, 15)
  weights = random_weights(spec)
  missing = {k: v for k, v in weights.items() if k != 'Mconv3_stage2'}
  with pytest.raises(errors.BadFile, match=r'pose_iter_1234\.caffemodel has no weights for '
                                           r'layer Mconv3_stage2 \(layers with weights: '
                                           r'conv1_stage1, ') as e:
    _convert_params(tmp_path, spec, missing)
  _one_line(e)
  w, b = weights['conv5_stage1']
  bad = dict(weights, conv5_stage1=(w[:, :4], b))
  with pytest.raises(errors.BadFile, match=r'layer conv5_stage1 holds weights of shape 6x4x3x3 '
                                           r'\(out, in, kh, kw\); the deploy and config small '
                                           r'need 6x5x3x3') as e:
    _convert_params(tmp_path, spec, bad)
  _one_line(e)
  bad = dict(weights, conv5_stage1=(w, b[:5]))
  with pytest.raises(errors.BadFile, match=r'layer conv5_stage1 holds a bias of shape 5; '
                                           r'expected 6'):
    _convert_params(tmp_path, spec, bad)
  bad = dict(weights, conv5_stage1=(w,))
  net = caffe_proto.decode_net(caffemodel(spec, weights))
  for l in net.layers:
    if l.name == 'conv2_stage2':
      l.blobs = l.blobs[:1]
    if l.name == 'conv3_stage2':
      l.blobs[0] = caffe_proto.Blob((4, 5, 3, 3), l.blobs[0].data[:-1])
  config = convert_caffe.release_config(small_config(2, 'cpm14'), SIZE)
  deploy = caffe_proto.parse_prototxt(prototxt(spec))
  with pytest.raises(errors.BadFile, match=r'layer conv2_stage2 holds 1 blobs; expected 2 '
                                           r'\(weights, bias\)'):
    convert_caffe.convert_params(deploy, net, config)
  net.layers = [l for l in net.layers if l.name != 'conv2_stage2'] + \
      [l for l in caffe_proto.decode_net(caffemodel(spec, weights)).layers
       if l.name == 'conv2_stage2']
  with pytest.raises(errors.BadFile, match=r"layer conv3_stage2's weights blob holds 179 values "
                                           r'for its shape 4x5x3x3'):
    convert_caffe.convert_params(deploy, net, config)


def test_deploy_that_does_not_match(tmp_path):
  spec = small_spec(2, 15)
  weights = random_weights(spec)
  config = small_config(2, 'cpm14')
  config.model.stage_kernels = (3, 5, 3, 1)
  with pytest.raises(errors.ConfigMismatch, match=r'layer Mconv2_stage2 is a 3x3 convolution '
                                                  r'with 5 outputs; the config small has 5x5 '
                                                  r'with 5 \(stage2/conv2\)') as e:
    _convert_params(tmp_path, spec, weights, config)
  _one_line(e)
  config = small_config(3, 'cpm14')
  with pytest.raises(errors.BadFile, match=r'has no layer conv1_stage3 \(the config small '
                                           r'needs it: stage3/features\)'):
    _convert_params(tmp_path, spec, weights, config)
  with pytest.raises(errors.BadFile, match=r'a ReLU follows conv7_stage1; the belief '
                                           r'convolutions are linear'):
    _convert_params(tmp_path, small_spec(2, 15, relu_after_beliefs=True), weights)
  two = [dict(l, bottom=l['bottom'][:2]) if l['type'] == 'Concat' else l for l in spec]
  with pytest.raises(errors.ConfigMismatch, match=r'concat_stage2 \(read by Mconv1_stage2\) '
                                                  r'concatenates features, beliefs; expected '
                                                  r'conv4_stage2 \(with its ReLU\), '
                                                  r'conv7_stage1 \(no ReLU\) and '
                                                  r'pool_center_lower'):
    _convert_params(tmp_path, two, random_weights(two))
  no_pool = [l for l in spec if l['name'] != 'pool2_stage1']
  no_pool = [dict(l, bottom=['conv2_stage1']) if l['name'] == 'conv3_stage1' else l
             for l in no_pool]
  with pytest.raises(errors.ConfigMismatch, match=r'layer conv3_stage1 reads conv2_stage1 from '
                                                  r'conv2_stage1 \(Convolution\); expected a 3x3 '
                                                  r'stride-2 max-pool of conv2_stage1'):
    _convert_params(tmp_path, no_pool, random_weights(no_pool))
  with pytest.raises(errors.ConfigMismatch, match=r"the model outputs 17 channels; the "
                                                  r"release's models output 15 \(MPII / LSP\) or "
                                                  r"10 \(FLIC\)"):
    _convert_params(tmp_path, small_spec(2, 17), random_weights(small_spec(2, 17)),
                    small_config(2, 'mpii'))
  with pytest.raises(errors.ConfigMismatch, match=r"config x: data.parts='flic' \(9 parts\) is "
                                                  r"not a reordering of the release's 14 output "
                                                  r"parts \(head_top, neck, "):
    convert_caffe.permutation('flic', 15, 'x')
  with pytest.raises(errors.ConfigMismatch, match=r'layer conv7_stage1 is a 1x1 convolution with '
                                                  r'15 outputs; the config small has 1x1 with 10'):
    _convert_params(tmp_path, spec, weights, small_config(2, 'flic'))


def test_config_by_deploy_and_input_size(tmp_path):
  spec = small_spec(3, 15)
  deploy, model = write(tmp_path, spec, random_weights(spec))
  net = convert_caffe.read_deploy(deploy)
  assert convert_caffe.deploy_shape(net) == (3, 15)
  assert convert_caffe.deploy_input(net) == ('data', (1, 4, SIZE, SIZE))
  assert convert_caffe.DEFAULT_CONFIGS == {(6, 15): 'cpm_mpii', (4, 10): 'cpm_flic'}
  with pytest.raises(errors.BadFlag, match=r"has 3 stages and 15 outputs, not a released "
                                           r"model's shape \(6 / 15 or 4 / 10\); give --config"):
    convert_caffe.convert(deploy, model, str(tmp_path / 'art'))
  with pytest.raises(errors.ConfigMismatch, match=r'the input is 40 x 40 px; config small has '
                                                  r'data.crop_size=64'):
    convert_caffe.convert_params(net, convert_caffe.read_weights(model), small_config(3),
                                 deploy, model, 'small')
  full = convert_caffe.release_config(convert_caffe.load_config('cpm_lsp'), 368)
  assert full.targets.center_sigma == 21.0 and full.data.crop_size == 368
  assert full.data.eval_dataset == 'lsp'


def test_bad_files(tmp_path):
  spec = small_spec(2, 15)
  text = prototxt(spec)
  with pytest.raises(errors.BadFile, match=r'pose_deploy\.prototxt: line 28: expected a value for '
                                           r"kernel_size, found '}'") as e:
    _convert_params(tmp_path, spec, random_weights(spec),
                    deploy_text=text.replace('kernel_size: 3', 'kernel_size: }', 1))
  _one_line(e)
  (tmp_path / 'junk.caffemodel').write_bytes(b'\x0a\xff\xff\xff\x0fnot a model')
  with pytest.raises(errors.BadFile, match=r'junk\.caffemodel is not a Caffe model \(NetParameter:'
                                           r' field 1 runs past the end'):
    convert_caffe.read_weights(str(tmp_path / 'junk.caffemodel'))
  (tmp_path / 'empty.caffemodel').write_bytes(caffe_proto.encode_net(caffe_proto.Net('x')))
  with pytest.raises(errors.BadFile, match=r'holds no layer with weights \(0 layers\)'):
    convert_caffe.read_weights(str(tmp_path / 'empty.caffemodel'))
  with pytest.raises(errors.MissingData, match=r'nope\.prototxt: no such file'):
    convert_caffe.read_deploy(str(tmp_path / 'nope.prototxt'))
  with pytest.raises(errors.MissingData, match=r'nope\.caffemodel: no such file'):
    convert_caffe.read_weights(str(tmp_path / 'nope.caffemodel'))


def test_cli(tmp_path):
  """The entry point: a conversion with --config as a file, and an error as one line."""
  spec = small_spec(2, 15)
  deploy, model = write(tmp_path, spec, random_weights(spec))
  cfg = tmp_path / 'small_config.py'
  cfg.write_text(
      'import sys\n'
      f'sys.path.insert(0, {os.path.join(ROOT, "tests")!r})\n'
      'from test_convert_caffe import small_config\n'
      'def get_config():\n'
      "  return small_config(2, 'cpm14')\n")
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  run = lambda *args: subprocess.run([sys.executable, '-m', 'posemachines.convert_caffe', *args],
                                     cwd=ROOT, capture_output=True, text=True, timeout=600,
                                     env=env)
  out = run(f'--prototxt={deploy}', f'--caffemodel={model}', f'--output={tmp_path / "art"}',
            f'--config={cfg}', '--platforms=cpu')
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'Converted' in out.stdout and '16 convolutions' in out.stdout
  assert os.path.isfile(tmp_path / 'art' / 'artifact.json')
  assert os.path.isfile(tmp_path / 'art_workdir' / 'config.json')
  bad = run(f'--prototxt={tmp_path / "missing.prototxt"}', f'--caffemodel={model}',
            f'--output={tmp_path / "x"}')
  assert bad.returncode == errors.EXIT_USER_ERROR
  lines = [l for l in bad.stderr.splitlines() if 'error' in l]
  assert lines == [f'posemachines.convert_caffe: error: {tmp_path / "missing.prototxt"}: no such '
                   'file (expected a Caffe deploy .prototxt)']
