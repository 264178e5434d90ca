"""Export: the artifact's outputs equal the checkpoint's, and it loads with jax and numpy alone."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from posemachines.tools import artifact
from posemachines.tools import export
from posemachines.tools import loading


@pytest.fixture(scope='module')
def exported(trained_workdir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('artifact'))
  export.export(trained_workdir, out, saved_model=True)
  return out


def _crops(n, size=48, seed=0):
  return np.random.RandomState(seed).randint(0, 256, (n, size, size, 3)).astype(np.uint8)


def test_artifact_outputs_equal_the_checkpoint(trained_workdir, exported):
  ckpt = loading.load(trained_workdir)
  art = loading.load(exported)
  assert ckpt.source.endswith('(step 4)')
  forward = jax.jit(ckpt.forward)
  for n in (1, 3):  # the batch size is symbolic: one artifact serves every size
    x = _crops(n, seed=n)
    expected = np.asarray(forward(x))
    got = np.asarray(art.forward(x))
    assert got.shape == expected.shape == (2, n, 12, 12, 15)
    np.testing.assert_array_equal(got, expected)
  with pytest.raises(ValueError, match=r'crops must be \[batch, 48, 48, 3\]'):
    art.forward(_crops(1, size=40))


def test_artifact_metadata(exported, trained_workdir):
  with open(os.path.join(exported, artifact.META)) as f:
    meta = json.load(f)
  assert meta['input_size'] == 48 and meta['stride'] == 4 and meta['num_stages'] == 2
  assert meta['skeleton']['name'] == 'cpm14' and len(meta['skeleton']['parts']) == 14
  assert ['r_shoulder', 'r_elbow'] in meta['skeleton']['limbs']
  assert meta['normalisation']['pixels'] == 'x / 256 - 0.5'
  assert meta['config']['model']['num_stages'] == 2
  assert set(meta['platforms']) == {'cpu', 'cuda', 'tpu'}
  with open(os.path.join(trained_workdir, 'config.json')) as f:
    assert meta['config'] == json.load(f)


def test_artifact_loads_without_training_code(exported, trained_workdir, tmp_path):
  """A fresh interpreter imports only the artifact's own loader (no posemachines, flax, optax)."""
  x = _crops(2, seed=7)
  np.save(tmp_path / 'x.npy', x)
  script = (
      'import sys, numpy as np\n'
      f'sys.path.insert(0, {exported!r})\n'
      'import artifact\n'
      f'art = artifact.load({exported!r})\n'
      'y = art.forward(np.load("x.npy"))\n'
      'np.save("y.npy", np.asarray(y))\n'
      'bad = [m for m in ("posemachines", "flax", "optax", "orbax", "tensorflow")\n'
      '       if m in sys.modules]\n'
      'assert not bad, bad\n')
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  subprocess.run([sys.executable, '-c', script], env=env, cwd=str(tmp_path), check=True,
                 timeout=300)
  expected = np.asarray(jax.jit(loading.load(trained_workdir).forward)(x))
  np.testing.assert_array_equal(np.load(tmp_path / 'y.npy'), expected)


def test_saved_model_matches(exported, trained_workdir):
  import tensorflow as tf
  model = tf.saved_model.load(os.path.join(exported, 'saved_model'))
  x = _crops(3, seed=3)
  got = model.signatures['serving_default'](crops=tf.constant(x))['output_0'].numpy()
  model = loading.load(trained_workdir)
  expected = np.asarray(jax.jit(model.forward)(x))
  np.testing.assert_allclose(got, expected, rtol=0, atol=float32_tolerance(model, expected))


def float32_tolerance(model, expected, safety=4.0):
  """How far two float32 implementations of the same network may differ: TensorFlow's kernels
  and XLA's sum each convolution in their own order. A sum of K products rounds with a relative
  error of about sqrt(K) * eps (eps = 2^-23); ReLU networks pass relative errors on with a gain of
  about 1, so the layers' errors add up: max|output| * eps * sum over convolutions of
  sqrt(kh * kw * cin), times a safety factor."""
  kernels = [v for path, v in jax.tree_util.tree_leaves_with_path(model.variables['params'])
             if 'kernel' in jax.tree_util.keystr(path)]
  growth = sum(np.sqrt(np.prod(k.shape[:-1])) for k in kernels)
  return safety * float(np.abs(expected).max()) * float(np.finfo(np.float32).eps) * growth


def test_bad_model_paths(tmp_path, exported):
  with pytest.raises(FileNotFoundError, match='neither an exported artifact'):
    loading.load(str(tmp_path))
  broken = tmp_path / 'broken'
  broken.mkdir()
  for name in (artifact.META, artifact.FUNCTION):
    (broken / name).write_bytes(open(os.path.join(exported, name), 'rb').read())
  np.savez(broken / artifact.PARAMS, nothing=np.zeros(1))
  with pytest.raises(ValueError, match='lacks parameters'):
    loading.load(str(broken))
  (tmp_path / 'wd').mkdir()  # a workdir whose training never wrote a checkpoint
  with open(os.path.join(exported, artifact.META)) as f:
    (tmp_path / 'wd' / 'config.json').write_text(json.dumps(json.load(f)['config']))
  with pytest.raises(FileNotFoundError, match='No checkpoint in'):
    loading.load(str(tmp_path / 'wd'))
