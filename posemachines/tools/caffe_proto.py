"""A minimal reader and writer of Caffe's network files, without Caffe or a protobuf schema.

Binary models (``.caffemodel``) are protobuf ``NetParameter`` messages, read here from the wire
format directly. Only what a deploy network of plain layers needs is kept:

  NetParameter      name 1, layers 2 (V1LayerParameter, the legacy field), input 3,
                    input_dim 4, input_shape 8 (BlobShape), layer 100 (LayerParameter)
  LayerParameter    name 1, type 2 (string), bottom 3, top 4, blobs 7, concat_param 104,
                    convolution_param 106, pooling_param 121, slice_param 126, input_param 143
  V1LayerParameter  bottom 2, top 3, name 4, type 5 (enum), blobs 6, concat_param 9,
                    convolution_param 10, pooling_param 19, slice_param 31
  BlobProto         num 1, channels 2, height 3, width 4 (legacy shape), data 5 (float,
                    packed or not), shape 7 (BlobShape: dim 1), double_data 8
  Convolution       num_output 1, bias_term 2, pad 3, kernel_size 4, group 5, stride 6,
                    pad_h 9, pad_w 10, kernel_h 11, kernel_w 12, stride_h 13, stride_w 14,
                    dilation 18
  Pooling           pool 1 (MAX 0, AVE 1, STOCHASTIC 2), kernel_size 2, stride 3, pad 4,
                    kernel_h 5, kernel_w 6, stride_h 7, stride_w 8, pad_h 9, pad_w 10,
                    global_pooling 12
  Concat            concat_dim 1, axis 2;  Slice: slice_dim 1, slice_point 2, axis 3
Other fields are skipped. Text files (``.prototxt``) are parsed by ``parse_prototxt`` into the
same classes (field names as in caffe.proto; ``layer { ... }`` or legacy ``layers { ... }`` with
upper-case type names). ``encode_net`` writes a binary model (for tests, and for tools that
need to produce one). Errors are ``ProtoError`` (a ValueError) saying where the data broke.
"""
from __future__ import annotations

import dataclasses
import re
import struct

import numpy as np


class ProtoError(ValueError):
  """Data that is not a valid message of the expected kind."""


# ------------------------------------------------------------------------------- classes --

@dataclasses.dataclass
class Blob:
  shape: tuple[int, ...]
  data: np.ndarray                   # float32, flat


@dataclasses.dataclass
class ConvParam:
  num_output: int = 0
  bias_term: bool = True
  pad: list = dataclasses.field(default_factory=list)
  kernel_size: list = dataclasses.field(default_factory=list)
  stride: list = dataclasses.field(default_factory=list)
  dilation: list = dataclasses.field(default_factory=list)
  group: int = 1
  pad_h: int | None = None
  pad_w: int | None = None
  kernel_h: int | None = None
  kernel_w: int | None = None
  stride_h: int | None = None
  stride_w: int | None = None

  def kernel(self) -> tuple[int, int]:
    return _pair(self.kernel_size, self.kernel_h, self.kernel_w, None)

  def pads(self) -> tuple[int, int]:
    return _pair(self.pad, self.pad_h, self.pad_w, 0)

  def strides(self) -> tuple[int, int]:
    return _pair(self.stride, self.stride_h, self.stride_w, 1)

  def dilations(self) -> tuple[int, int]:
    return _pair(self.dilation, None, None, 1)


@dataclasses.dataclass
class PoolParam:
  pool: str = 'MAX'
  kernel_size: list = dataclasses.field(default_factory=list)
  stride: list = dataclasses.field(default_factory=list)
  pad: list = dataclasses.field(default_factory=list)
  kernel_h: int | None = None
  kernel_w: int | None = None
  stride_h: int | None = None
  stride_w: int | None = None
  pad_h: int | None = None
  pad_w: int | None = None
  global_pooling: bool = False

  def kernel(self) -> tuple[int, int]:
    return _pair(self.kernel_size, self.kernel_h, self.kernel_w, None)

  def pads(self) -> tuple[int, int]:
    return _pair(self.pad, self.pad_h, self.pad_w, 0)

  def strides(self) -> tuple[int, int]:
    return _pair(self.stride, self.stride_h, self.stride_w, 1)


def _pair(values, h, w, default):
  if h is not None or w is not None:
    return (h if h is not None else default, w if w is not None else default)
  if not values:
    return (default, default)
  return (values[0], values[-1]) if len(values) <= 2 else (values[0], values[1])


@dataclasses.dataclass
class Layer:
  name: str = ''
  type: str = ''
  bottom: list = dataclasses.field(default_factory=list)
  top: list = dataclasses.field(default_factory=list)
  blobs: list = dataclasses.field(default_factory=list)
  conv: ConvParam | None = None
  pool: PoolParam | None = None
  concat_axis: int = 1
  slice_axis: int = 1
  slice_points: list = dataclasses.field(default_factory=list)
  input_shapes: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Net:
  name: str = ''
  layers: list = dataclasses.field(default_factory=list)
  inputs: list = dataclasses.field(default_factory=list)
  input_shapes: list = dataclasses.field(default_factory=list)   # one tuple per input
  legacy: bool = False                                           # read from V1 ``layers``

  def input_shape(self, name: str):
    """The declared shape of input ``name`` (net inputs or an Input layer), or None."""
    if name in self.inputs:
      i = self.inputs.index(name)
      return self.input_shapes[i] if i < len(self.input_shapes) else None
    for layer in self.layers:
      if layer.type == 'Input' and name in layer.top:
        shapes = layer.input_shapes
        if shapes:
          return shapes[min(layer.top.index(name), len(shapes) - 1)]
    return None


# V1LayerParameter.LayerType, as numbers (binary) and names (text).
V1_TYPES = {0: 'None', 35: 'AbsVal', 1: 'Accuracy', 30: 'ArgMax', 2: 'BNLL', 3: 'Concat',
            37: 'ContrastiveLoss', 4: 'Convolution', 5: 'Data', 39: 'Deconvolution',
            6: 'Dropout', 32: 'DummyData', 7: 'EuclideanLoss', 25: 'Eltwise', 38: 'Exp',
            8: 'Flatten', 9: 'HDF5Data', 10: 'HDF5Output', 28: 'HingeLoss', 11: 'Im2col',
            12: 'ImageData', 13: 'InfogainLoss', 14: 'InnerProduct', 15: 'LRN', 29: 'MemoryData',
            16: 'MultinomialLogisticLoss', 34: 'MVN', 17: 'Pooling', 26: 'Power', 18: 'ReLU',
            19: 'Sigmoid', 27: 'SigmoidCrossEntropyLoss', 36: 'Silence', 20: 'Softmax',
            21: 'SoftmaxWithLoss', 22: 'Split', 33: 'Slice', 23: 'TanH', 24: 'WindowData',
            31: 'Threshold'}
V1_CODES = {v: k for k, v in V1_TYPES.items()}
V1_NAMES = {re.sub(r'[^A-Z0-9]', '', v.upper()): v for v in V1_TYPES.values()}
V1_NAMES.update({'SOFTMAXLOSS': 'SoftmaxWithLoss', 'HDF5DATA': 'HDF5Data'})
POOL_METHODS = ('MAX', 'AVE', 'STOCHASTIC')


# ---------------------------------------------------------------------------- wire format --

def _varint(buf, pos: int):
  result = shift = 0
  while True:
    if pos >= len(buf):
      raise ProtoError(f'truncated varint at byte {pos}')
    b = buf[pos]
    pos += 1
    result |= (b & 0x7F) << shift
    if not b & 0x80:
      return result, pos
    shift += 7
    if shift > 70:
      raise ProtoError(f'varint longer than 10 bytes at byte {pos}')


def iter_fields(buf, where: str = 'message'):
  """(field number, wire type, value) of a message: int (varint), memoryview (length-delimited)
  or bytes (fixed 32 / 64 bits)."""
  buf = memoryview(buf)
  pos, end = 0, len(buf)
  while pos < end:
    key, pos = _varint(buf, pos)
    field, wire = key >> 3, key & 7
    if field == 0:
      raise ProtoError(f'{where}: field number 0 at byte {pos}')
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire == 2:
      n, pos = _varint(buf, pos)
      if pos + n > end:
        raise ProtoError(f'{where}: field {field} runs past the end ({n} bytes at byte {pos} '
                         f'of {end})')
      value, pos = buf[pos:pos + n], pos + n
    elif wire == 5:
      if pos + 4 > end:
        raise ProtoError(f'{where}: truncated 32-bit field {field}')
      value, pos = bytes(buf[pos:pos + 4]), pos + 4
    elif wire == 1:
      if pos + 8 > end:
        raise ProtoError(f'{where}: truncated 64-bit field {field}')
      value, pos = bytes(buf[pos:pos + 8]), pos + 8
    else:
      raise ProtoError(f'{where}: unsupported wire type {wire} (field {field}) at byte {pos}')
    yield field, wire, value


def _signed(v: int) -> int:
  return v - (1 << 64) if v >= 1 << 63 else v


def _ints(wire, value) -> list[int]:
  """A repeated integer field's values from one occurrence (packed or not)."""
  if wire == 0:
    return [_signed(value)]
  if wire == 2:
    out, pos = [], 0
    while pos < len(value):
      v, pos = _varint(value, pos)
      out.append(_signed(v))
    return out
  raise ProtoError(f'integer field with wire type {wire}')


def _text(wire, value, where) -> str:
  if wire != 2:
    raise ProtoError(f'{where}: string field with wire type {wire}')
  try:
    return bytes(value).decode('utf-8')
  except UnicodeDecodeError:
    raise ProtoError(f'{where}: a string field is not UTF-8') from None


def _shape(buf) -> tuple[int, ...]:
  dims = []
  for f, w, v in iter_fields(buf, 'BlobShape'):
    if f == 1:
      dims.extend(_ints(w, v))
  return tuple(dims)


def _blob(buf, where: str) -> Blob:
  legacy = {}
  shape, chunks, singles, doubles = None, [], [], []
  for f, w, v in iter_fields(buf, where):
    if f in (1, 2, 3, 4):
      legacy[f] = _ints(w, v)[-1]
    elif f == 7:
      shape = _shape(v)
    elif f == 5:
      if w == 2:
        if len(v) % 4:
          raise ProtoError(f'{where}: packed float data of {len(v)} bytes')
        chunks.append(np.frombuffer(v, '<f4'))
      elif w == 5:
        singles.append(v)
      else:
        raise ProtoError(f'{where}: float data with wire type {w}')
    elif f == 8:
      if w == 2:
        doubles.append(np.frombuffer(v, '<f8').astype(np.float32))
      elif w == 1:
        doubles.append(np.frombuffer(v, '<f8').astype(np.float32))
  if singles:
    chunks.append(np.frombuffer(b''.join(singles), '<f4'))
  data = np.concatenate(chunks + doubles) if chunks or doubles else np.zeros(0, np.float32)
  if shape is None:
    shape = tuple(legacy.get(k, 0) for k in (1, 2, 3, 4)) if legacy else (len(data),)
  return Blob(tuple(int(d) for d in shape), data.astype(np.float32))


def _conv(buf) -> ConvParam:
  c = ConvParam()
  for f, w, v in iter_fields(buf, 'ConvolutionParameter'):
    if f == 1:
      c.num_output = _ints(w, v)[-1]
    elif f == 2:
      c.bias_term = bool(_ints(w, v)[-1])
    elif f == 3:
      c.pad.extend(_ints(w, v))
    elif f == 4:
      c.kernel_size.extend(_ints(w, v))
    elif f == 5:
      c.group = _ints(w, v)[-1]
    elif f == 6:
      c.stride.extend(_ints(w, v))
    elif f == 18:
      c.dilation.extend(_ints(w, v))
    elif f in _CONV_SCALARS:
      setattr(c, _CONV_SCALARS[f], _ints(w, v)[-1])
  return c


_CONV_SCALARS = {9: 'pad_h', 10: 'pad_w', 11: 'kernel_h', 12: 'kernel_w', 13: 'stride_h',
                 14: 'stride_w'}
_POOL_SCALARS = {5: 'kernel_h', 6: 'kernel_w', 7: 'stride_h', 8: 'stride_w', 9: 'pad_h',
                 10: 'pad_w'}


def _pool(buf) -> PoolParam:
  p = PoolParam()
  for f, w, v in iter_fields(buf, 'PoolingParameter'):
    if f == 1:
      code = _ints(w, v)[-1]
      p.pool = POOL_METHODS[code] if 0 <= code < len(POOL_METHODS) else f'method {code}'
    elif f == 2:
      p.kernel_size.extend(_ints(w, v))
    elif f == 3:
      p.stride.extend(_ints(w, v))
    elif f == 4:
      p.pad.extend(_ints(w, v))
    elif f == 12:
      p.global_pooling = bool(_ints(w, v)[-1])
    elif f in _POOL_SCALARS:
      setattr(p, _POOL_SCALARS[f], _ints(w, v)[-1])
  return p


def _concat_axis(buf) -> int:
  axis = dim = None
  for f, w, v in iter_fields(buf, 'ConcatParameter'):
    if f == 2:
      axis = _ints(w, v)[-1]
    elif f == 1:
      dim = _ints(w, v)[-1]
  return axis if axis is not None else (dim if dim is not None else 1)


def _slice(buf) -> tuple[int, list]:
  axis = dim = None
  points = []
  for f, w, v in iter_fields(buf, 'SliceParameter'):
    if f == 3:
      axis = _ints(w, v)[-1]
    elif f == 1:
      dim = _ints(w, v)[-1]
    elif f == 2:
      points.extend(_ints(w, v))
  return (axis if axis is not None else (dim if dim is not None else 1)), points


# Field numbers of the two layer messages.
_V2 = dict(name=1, type=2, bottom=3, top=4, blobs=7, concat=104, conv=106, pool=121, slice=126,
           input=143)
_V1 = dict(name=4, type=5, bottom=2, top=3, blobs=6, concat=9, conv=10, pool=19, slice=31,
           input=-1)


def _layer(buf, legacy: bool, index: int) -> Layer:
  n = _V1 if legacy else _V2
  layer = Layer()
  where = f'layer {index + 1}'
  for f, w, v in iter_fields(buf, where):
    if f == n['name']:
      layer.name = _text(w, v, where)
      where = f'layer {layer.name!r}'
    elif f == n['type']:
      if legacy:
        code = _ints(w, v)[-1]
        layer.type = V1_TYPES.get(code, f'V1 type {code}')
      else:
        layer.type = _text(w, v, where)
    elif f == n['bottom']:
      layer.bottom.append(_text(w, v, where))
    elif f == n['top']:
      layer.top.append(_text(w, v, where))
    elif f == n['blobs']:
      layer.blobs.append(_blob(v, f'{where}, blob {len(layer.blobs) + 1}'))
    elif f == n['conv']:
      layer.conv = _conv(v)
    elif f == n['pool']:
      layer.pool = _pool(v)
    elif f == n['concat']:
      layer.concat_axis = _concat_axis(v)
    elif f == n['slice']:
      layer.slice_axis, layer.slice_points = _slice(v)
    elif f == n['input']:
      for f2, _, v2 in iter_fields(v, 'InputParameter'):
        if f2 == 1:
          layer.input_shapes.append(_shape(v2))
  return layer


def decode_net(data: bytes) -> Net:
  """A binary NetParameter (a .caffemodel's contents) -> Net."""
  net = Net()
  dims = []
  v1, v2 = [], []
  for f, w, v in iter_fields(data, 'NetParameter'):
    if f == 1:
      net.name = _text(w, v, 'NetParameter name')
    elif f == 3:
      net.inputs.append(_text(w, v, 'NetParameter input'))
    elif f == 4:
      dims.extend(_ints(w, v))
    elif f == 8:
      net.input_shapes.append(_shape(v))
    elif f == 100:
      if w != 2:
        raise ProtoError(f'NetParameter field 100 (layer) with wire type {w}')
      v2.append(v)
    elif f == 2:
      if w != 2:
        raise ProtoError(f'NetParameter field 2 (layers) with wire type {w}')
      v1.append(v)
  if not net.input_shapes and dims:
    net.input_shapes = [tuple(dims[i:i + 4]) for i in range(0, len(dims), 4)]
  net.layers = [_layer(b, False, i) for i, b in enumerate(v2)]
  if v1 and not v2:
    net.legacy = True
    net.layers = [_layer(b, True, i) for i, b in enumerate(v1)]
  elif v1:
    net.layers += [_layer(b, True, i) for i, b in enumerate(v1)]
  return net


# -------------------------------------------------------------------------------- writing --

def _enc_varint(n: int) -> bytes:
  if n < 0:
    n += 1 << 64
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    if n:
      out.append(b | 0x80)
    else:
      out.append(b)
      return bytes(out)


def _key(field: int, wire: int) -> bytes:
  return _enc_varint(field << 3 | wire)


def _len(field: int, payload: bytes) -> bytes:
  return _key(field, 2) + _enc_varint(len(payload)) + payload


def _int(field: int, value: int) -> bytes:
  return _key(field, 0) + _enc_varint(int(value))


def _str(field: int, value: str) -> bytes:
  return _len(field, value.encode('utf-8'))


def encode_blob(blob: Blob, legacy_shape: bool = False, packed: bool = True) -> bytes:
  out = b''
  if legacy_shape:
    dims = (1,) * (4 - len(blob.shape)) + tuple(blob.shape)
    if len(dims) != 4:
      raise ValueError(f'a legacy blob shape has 4 dimensions, not {blob.shape}')
    out += b''.join(_int(f, d) for f, d in zip((1, 2, 3, 4), dims))
  data = np.asarray(blob.data, '<f4').ravel()
  if packed:
    out += _len(5, data.tobytes())
  else:
    key = _key(5, 5)
    out += b''.join(key + struct.pack('<f', x) for x in data.tolist())
  if not legacy_shape:
    out += _len(7, _len(1, b''.join(_enc_varint(d) for d in blob.shape)))
  return out


def _encode_conv(c: ConvParam) -> bytes:
  out = _int(1, c.num_output)
  if not c.bias_term:
    out += _int(2, 0)
  out += b''.join(_int(3, p) for p in c.pad) + b''.join(_int(4, k) for k in c.kernel_size)
  if c.group != 1:
    out += _int(5, c.group)
  out += b''.join(_int(6, s) for s in c.stride) + b''.join(_int(18, d) for d in c.dilation)
  for f, name in _CONV_SCALARS.items():
    if getattr(c, name) is not None:
      out += _int(f, getattr(c, name))
  return out


def _encode_pool(p: PoolParam) -> bytes:
  out = _int(1, POOL_METHODS.index(p.pool))
  out += b''.join(_int(2, k) for k in p.kernel_size) + b''.join(_int(3, s) for s in p.stride)
  out += b''.join(_int(4, x) for x in p.pad)
  for f, name in _POOL_SCALARS.items():
    if getattr(p, name) is not None:
      out += _int(f, getattr(p, name))
  if p.global_pooling:
    out += _int(12, 1)
  return out


def encode_layer(layer: Layer, legacy: bool = False, packed: bool = True) -> bytes:
  n = _V1 if legacy else _V2
  out = _str(n['name'], layer.name)
  if legacy:
    if layer.type not in V1_CODES:
      raise ValueError(f'layer {layer.name!r}: type {layer.type!r} has no V1 code')
    out += _int(n['type'], V1_CODES[layer.type])
  else:
    out += _str(n['type'], layer.type)
  out += b''.join(_str(n['bottom'], b) for b in layer.bottom)
  out += b''.join(_str(n['top'], t) for t in layer.top)
  if layer.conv is not None:
    out += _len(n['conv'], _encode_conv(layer.conv))
  if layer.pool is not None:
    out += _len(n['pool'], _encode_pool(layer.pool))
  if layer.type == 'Concat':
    out += _len(n['concat'], _int(1, layer.concat_axis) if legacy else _int(2, layer.concat_axis))
  if layer.type == 'Slice':
    out += _len(n['slice'], _int(3, layer.slice_axis)
                + b''.join(_int(2, p) for p in layer.slice_points))
  out += b''.join(_len(n['blobs'], encode_blob(b, legacy, packed)) for b in layer.blobs)
  return out


def encode_net(net: Net, legacy: bool = False, packed: bool = True) -> bytes:
  """Net -> a binary NetParameter: ``layer`` (100) messages, or with ``legacy`` V1 ``layers``
  (2) with legacy 4-D blob shapes; ``packed=False`` writes float data one value at a time."""
  out = _str(1, net.name) if net.name else b''
  out += b''.join(_str(3, i) for i in net.inputs)
  for shape in net.input_shapes:
    out += b''.join(_int(4, d) for d in shape)
  field = 2 if legacy else 100
  out += b''.join(_len(field, encode_layer(l, legacy, packed)) for l in net.layers)
  return out


# ------------------------------------------------------------------------------- prototxt --

_TOKEN = re.compile(r'''\s+|\#[^\n]*|(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')'''
                    r'''|(?P<punct>[{}:\[\],;<>])|(?P<word>[^\s{}:\[\],;<>"'\#]+)|(?P<bad>.)''')


def _tokens(text: str):
  line = 1
  for m in _TOKEN.finditer(text):
    kind = m.lastgroup
    if kind == 'bad':
      raise ProtoError(f'line {line}: unexpected character {m.group()!r}')
    if kind:
      tok = m.group(kind)
      if kind == 'str':
        tok = ('str', bytes(tok[1:-1], 'utf-8').decode('unicode_escape'))
      else:
        tok = (kind, tok)
      yield tok, line
    line += m.group().count('\n')


def parse_text(text: str) -> list:
  """Protobuf text format -> [(name, value)], a value being a token string, ('str', s) for a
  quoted string, or a nested list for a message."""
  toks = list(_tokens(text))
  pos = 0

  def message(end):
    nonlocal pos
    out = []
    while pos < len(toks):
      (kind, tok), line = toks[pos]
      if kind == 'punct' and tok == end:
        pos += 1
        return out
      if kind == 'punct' and tok in ',;':
        pos += 1
        continue
      if kind != 'word':
        raise ProtoError(f'line {line}: expected a field name, found {tok!r}')
      pos += 1
      if pos >= len(toks):
        raise ProtoError(f'line {line}: {tok} has no value')
      (k2, t2), l2 = toks[pos]
      if k2 == 'punct' and t2 == ':':
        pos += 1
        if pos >= len(toks):
          raise ProtoError(f'line {l2}: {tok} has no value')
        (k2, t2), l2 = toks[pos]
      if k2 == 'punct' and t2 in '{<':
        pos += 1
        out.append((tok, message('}' if t2 == '{' else '>')))
      elif k2 == 'punct' and t2 == '[':
        pos += 1
        while True:
          if pos >= len(toks):
            raise ProtoError(f'line {l2}: unterminated list for {tok}')
          (k3, t3), l3 = toks[pos]
          pos += 1
          if k3 == 'punct' and t3 == ']':
            break
          if k3 == 'punct' and t3 == ',':
            continue
          if k3 == 'punct':
            raise ProtoError(f'line {l3}: unexpected {t3!r} in the list for {tok}')
          out.append((tok, t3 if k3 == 'word' else ('str', t3)))
      elif k2 == 'word':
        pos += 1
        out.append((tok, t2))
      elif k2 == 'str':
        pos += 1
        out.append((tok, ('str', t2)))
      else:
        raise ProtoError(f'line {l2}: expected a value for {tok}, found {t2!r}')
    if end is not None:
      raise ProtoError(f'line {toks[-1][1] if toks else 1}: a message is not closed '
                       f'(missing {end!r})')
    return out

  return message(None)


def _scalar(value, what: str):
  if isinstance(value, tuple):
    return value[1]
  if isinstance(value, list):
    raise ProtoError(f'{what} is a message, expected a value')
  low = value.lower()
  if low in ('true', 'false'):
    return low == 'true'
  try:
    return int(value, 0)
  except ValueError:
    pass
  try:
    return float(value)
  except ValueError:
    return value            # an enum name


def _int_value(value, what: str) -> int:
  v = _scalar(value, what)
  if isinstance(v, bool) or not isinstance(v, int):
    if isinstance(v, float) and v == int(v):
      return int(v)
    raise ProtoError(f'{what} is {v!r}, expected an integer')
  return v


def _text_conv(fields, what) -> ConvParam:
  c = ConvParam()
  for k, v in fields:
    if k == 'num_output':
      c.num_output = _int_value(v, f'{what} num_output')
    elif k == 'bias_term':
      c.bias_term = bool(_scalar(v, k))
    elif k in ('pad', 'kernel_size', 'stride', 'dilation'):
      getattr(c, k).append(_int_value(v, f'{what} {k}'))
    elif k == 'group':
      c.group = _int_value(v, f'{what} group')
    elif k in _CONV_SCALARS.values():
      setattr(c, k, _int_value(v, f'{what} {k}'))
  return c


def _text_pool(fields, what) -> PoolParam:
  p = PoolParam()
  for k, v in fields:
    if k == 'pool':
      method = _scalar(v, k)
      p.pool = POOL_METHODS[method] if isinstance(method, int) else str(method).upper()
    elif k in ('kernel_size', 'stride', 'pad'):
      getattr(p, k).append(_int_value(v, f'{what} {k}'))
    elif k == 'global_pooling':
      p.global_pooling = bool(_scalar(v, k))
    elif k in _POOL_SCALARS.values():
      setattr(p, k, _int_value(v, f'{what} {k}'))
  return p


def _text_shape(fields, what) -> tuple[int, ...]:
  return tuple(_int_value(v, f'{what} dim') for k, v in fields if k == 'dim')


def _text_layer(fields, legacy: bool, index: int) -> Layer:
  layer = Layer()
  what = f'layer {index + 1}'
  for k, v in fields:
    if k == 'name':
      layer.name = str(_scalar(v, k))
      what = f'layer {layer.name!r}'
  for k, v in fields:
    if k == 'type':
      t = str(_scalar(v, f'{what} type'))
      layer.type = V1_NAMES.get(re.sub(r'[^A-Z0-9]', '', t.upper()), t) if legacy else t
    elif k in ('bottom', 'top'):
      getattr(layer, k).append(str(_scalar(v, f'{what} {k}')))
    elif k == 'convolution_param':
      layer.conv = _text_conv(v, what)
    elif k == 'pooling_param':
      layer.pool = _text_pool(v, what)
    elif k == 'concat_param':
      for k2, v2 in v:
        if k2 in ('axis', 'concat_dim'):
          layer.concat_axis = _int_value(v2, f'{what} {k2}')
    elif k == 'slice_param':
      for k2, v2 in v:
        if k2 in ('axis', 'slice_dim'):
          layer.slice_axis = _int_value(v2, f'{what} {k2}')
        elif k2 == 'slice_point':
          layer.slice_points.append(_int_value(v2, f'{what} slice_point'))
    elif k == 'input_param':
      layer.input_shapes = [_text_shape(s, what) for k2, s in v if k2 == 'shape']
  return layer


def parse_prototxt(text: str) -> Net:
  """A network definition in protobuf text format (a deploy .prototxt) -> Net."""
  fields = parse_text(text)
  net = Net()
  dims = []
  v1, v2 = [], []
  for k, v in fields:
    if k == 'name':
      net.name = str(_scalar(v, k))
    elif k == 'input':
      net.inputs.append(str(_scalar(v, k)))
    elif k == 'input_dim':
      dims.append(_int_value(v, 'input_dim'))
    elif k == 'input_shape':
      net.input_shapes.append(_text_shape(v, 'input_shape'))
    elif k == 'layer':
      v2.append(v)
    elif k == 'layers':
      v1.append(v)
  if not net.input_shapes and dims:
    net.input_shapes = [tuple(dims[i:i + 4]) for i in range(0, len(dims), 4)]
  for i, v in enumerate(v2 + v1):
    if not isinstance(v, list):
      raise ProtoError(f'layer {i + 1} is a value, expected a {{ ... }} message')
  net.layers = [_text_layer(v, False, i) for i, v in enumerate(v2)]
  net.layers += [_text_layer(v, True, i) for i, v in enumerate(v1)]
  net.legacy = bool(v1) and not v2
  return net
