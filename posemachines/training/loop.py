"""The training loop: ``train_and_evaluate(config, workdir)`` (``python -m posemachines.train``).

The step is jitted over a 1-D ('data',) mesh of every device of every process: params replicated,
batch split, so BatchNorm-style statistics and the gradient mean are over the global batch.
Several processes (hosts) are connected by posemachines/distributed.py; they stop together on
SIGTERM and resume exactly from the step they saved.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from posemachines import models
from posemachines.core import configs, errors, validate
from posemachines.training import checkpoint
from posemachines.training import distributed
from posemachines.training import feed
from posemachines.training import gradients
from posemachines.training import identity
from posemachines.training import optim
from posemachines.core import crops
from posemachines.core import skeleton
from posemachines.evaluation import visibility
from posemachines.training.step import TrainState, eval_step, split_variables, train_step
from posemachines.training import writers as metrics_writer
from posemachines.data import pipeline, registry
from posemachines.training import pictures
from posemachines.evaluation import metrics


NO_LABELLED_PARTS = 'no labelled parts'


def make_mesh(devices=None):
  """A 1-D ('data',) mesh over ``devices`` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return jax.sharding.Mesh(np.asarray(devices), ('data',),
                           axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(batch, mesh):
  """Host-local numpy batch -> global jax.Arrays split along 'data' across every process."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec('data'))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def init_state(config, model, tx, mesh):
  h, w = crops.size_hw(crops.from_config(config.data))
  x = jnp.zeros((1, h, w, 3))
  c = jnp.zeros((1, h, w, 1))

  def init(rng):
    params, model_state = split_variables(model.init(rng, x, c))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      model_state=model_state)

  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  abstract = jax.eval_shape(init, jax.random.key(0))
  shardings = jax.tree.map(lambda _: replicated, abstract)
  abstract = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          abstract, shardings)  # restores straight onto this mesh
  state = jax.jit(init, out_shardings=shardings)(jax.random.key(config.seed))
  return state, abstract, shardings


@dataclasses.dataclass(frozen=True)
class Built:
  """What ``build`` makes for a config: the model, the learning-rate schedule, an initial state
  (and its abstract shapes and shardings, for restoring), and the jitted train and eval steps."""
  model: Any
  schedule: Callable[[int], Any]
  state: TrainState
  abstract_state: Any
  train_step: Callable
  eval_step: Callable


def build(config, mesh, frozen=None) -> Built:
  """Model, optimizer, jitted train/eval steps and an initial state for ``config``
  (``frozen``: modules not trained; default ``config.frozen``)."""
  frozen = config.frozen if frozen is None else frozen
  model = models.build(config)
  h, w = crops.size_hw(crops.from_config(config.data))
  abstract_params, _ = split_variables(jax.eval_shape(
      model.init, jax.random.key(0), jnp.zeros((1, h, w, 3)), jnp.zeros((1, h, w, 1))))
  tx, sched = optim.make(config.optim, abstract_params, config.num_train_steps, frozen)
  state, abstract, shardings = init_state(config, model, tx, mesh)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  step = jax.jit(functools.partial(train_step, model=model, tx=tx, config=config),
                 out_shardings=(shardings, replicated), donate_argnums=(0,))
  ev = jax.jit(functools.partial(eval_step, model=model, config=config),
               out_shardings=replicated)
  return Built(model, sched, state, abstract, step, ev)


def initialise_from(config, state, abstract, mesh):
  """``state`` with the weights of ``config.init_from``'s newest checkpoint: all of them (the
  same model), or with ``config.init_from_matching`` those whose name and shape match, the others
  (for example prediction layers for another part set) left as initialised."""
  if not config.init_from_matching:
    return checkpoint.initialise_from(config.init_from, state, abstract)
  with open(os.path.join(config.init_from, identity.CONFIG_FILE)) as f:
    other_config = configs.upgrade(json.load(f))
  other = build(other_config, mesh)
  source = checkpoint.initialise_from(config.init_from, other.state, other.abstract_state)
  copied, fresh = [], []

  def merge(path, new, old):
    name = jax.tree_util.keystr(path)
    if old is not None and old.shape == new.shape and old.dtype == new.dtype:
      copied.append(name)
      return old
    fresh.append(name)
    return new

  def pick(new_tree, old_tree):
    old = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(old_tree)}
    return jax.tree_util.tree_map_with_path(
        lambda p, v: merge(p, v, old.get(jax.tree_util.keystr(p))), new_tree)

  params, model_state = pick(state.params, source.params), pick(state.model_state,
                                                                source.model_state)
  if not copied:
    raise errors.ConfigMismatch(f'--config.init_from={config.init_from}: no parameter of that '
                                'run has the name and shape of one of this model')
  logging.warning('Initialised %d arrays from %s; %d started afresh (no array of the same name '
                  'and shape there): %s', len(copied), config.init_from, len(fresh),
                  ', '.join(fresh) or 'none')
  return state.replace(params=params, model_state=model_state)


def run_evaluation(config, variables, eval_fn, mesh, num_examples=None, keep_predictions=False,
                   step=None):
  """PCKh (or PCK) @0.5 of every stage over the eval split, gathered from every process.

  Where the split labels visibility (both visible and occluded annotated parts), every stage
  also gets ``visibility_ap``: the AP of its heatmap maxima at telling visible parts from
  occluded ones (posemachines/evaluation/visibility.py), and ``pck@0.5_visible`` /
  ``pck@0.5_occluded``: the same PCK over the visible and over the occluded parts alone.

  A diverged model's outputs can be non-finite (a NaN or infinite map maximum). With
  ``config.on_nan='stop'`` that raises NonFinite naming the stages; with 'skip' it is logged,
  those parts count as misses, and a stage with any has no visibility AP (nan). Each stage
  reports its count as ``non_finite_outputs``.
  """
  n = config.num_eval_examples if num_examples is None else num_examples
  if config.eval_batch_size % mesh.devices.size:  # round up to a multiple of the devices
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.eval_batch_size = -(-config.eval_batch_size // mesh.devices.size) * mesh.devices.size
  ds = pipeline.eval_dataset(config, jax.process_index(), jax.process_count(), n)
  dists, ann, norms, preds, indices, scores, vis = [], [], [], [], [], [], []
  for batch in pipeline.as_numpy(ds):
    out = jax.device_get(eval_fn(variables, shard_batch(batch, mesh)))
    keep = out['index'] >= 0
    dists.append(out['dist'][:, keep])
    ann.append(out['annotated'][keep])
    norms.append(out['norm'][keep])
    indices.append(out['index'][keep])
    scores.append(out['pred'][:, keep][..., 2])
    vis.append(out['visible'][keep])
    if keep_predictions:
      preds.append(out['pred'][:, keep])
  dist = np.concatenate(dists, axis=1)
  annotated, norm = np.concatenate(ann), np.concatenate(norms)
  score, visible = np.concatenate(scores, axis=1), np.concatenate(vis)
  finite = np.isfinite(score) & np.isfinite(dist)                    # [T, N, P]
  non_finite = (~finite).reshape(len(score), -1).sum(axis=1)
  if non_finite.any():
    _report_non_finite(config, non_finite, finite[0].size, step)
    dist = np.where(finite, dist, np.inf)  # a miss
  with_visibility = visibility.has_labels(visible, annotated)
  parts = skeleton.get(config.data.parts).parts
  names = models.output_names(config)
  result = {'num_people': int(dist.shape[1]), 'metric': metric_name(config), 'stages': []}
  if not annotated.any():   # nothing to score: say so rather than report 0% accuracy
    result['note'] = NO_LABELLED_PARTS
    logging.warning('The evaluation split (%s, %d people) has no labelled parts: no accuracy.',
                    config.data.eval_split, result['num_people'])
    if keep_predictions:
      result['predictions'] = np.concatenate(preds, axis=1)
      result['index'] = np.concatenate(indices)
      result['visible'], result['annotated'] = visible, annotated
    return result
  shown = (annotated > 0) & (visible > 0)   # the visible annotated parts; the rest occluded
  for t in range(dist.shape[0]):
    per_part, total = metrics.pck(dist[t], annotated, norm, 0.5)
    result['stages'].append({'stage': t + 1, 'output': names[t], 'pck@0.5': total,
                             'per_part': dict(zip(parts, map(float, per_part))),
                             'non_finite_outputs': int(non_finite[t])})
    if with_visibility:
      stage = result['stages'][-1]
      stage['visibility_ap'] = (
          visibility.visibility_ap(score[t], visible, annotated)['ap'] if not non_finite[t]
          else float('nan'))
      stage['pck@0.5_visible'] = metrics.pck(dist[t], shown, norm, 0.5)[1]
      stage['pck@0.5_occluded'] = metrics.pck(dist[t], (annotated > 0) & ~shown, norm, 0.5)[1]
  if with_visibility and not non_finite[-1]:
    result['visibility'] = visibility.visibility_ap(score[-1], visible, annotated)
  if keep_predictions:
    result['predictions'] = np.concatenate(preds, axis=1)
    result['index'] = np.concatenate(indices)
    result['visible'], result['annotated'] = visible, annotated
  return result


def _report_non_finite(config, counts, per_stage: int, step=None):
  stages = ', '.join(f'stage {t + 1} ({int(c)} of {per_stage} parts)'
                     for t, c in enumerate(counts) if c)
  at = f' at step {step}' if step is not None else ''
  text = (f'The model\'s outputs are non-finite (NaN or infinite belief maps) in the evaluation'
          f'{at}: {stages}. The model has diverged; a lower --config.optim.learning_rate may '
          'help.')
  if config.on_nan != 'skip':
    raise NonFinite(f'{text} Set --config.on_nan=skip to go on regardless (such parts then count '
                    'as misses).')
  logging.warning('%s on_nan=skip: such parts count as misses and those stages have no '
                  'visibility AP.', text)


def metric_name(config) -> str:
  """The accuracy measure of the evaluation: 'PCKh@0.5' where the dataset normalises by the
  head size (MPII, synthetic people), 'PCK@0.5' where by the torso (LSP, FLIC)."""
  metric = registry.metric_name(registry.get_builder(config))
  return f'{"PCKh" if metric == "pckh" else "PCK"}@0.5'


def _output_name(stage: dict) -> str:
  return stage.get('output') or f'stage {stage["stage"]}'


def format_eval(result) -> str:
  """'PCKh@0.5 (%) per output: stage 1 63.8, stage 2 79.9, stage 3 87.6' (named as the model
  names its outputs), and the visibility AP where the split labels visibility."""
  if not result['stages'] and result.get('note') == NO_LABELLED_PARTS:
    return f'{NO_LABELLED_PARTS} in the evaluation split ({result["num_people"]} people)'
  outputs = ', '.join(f'{_output_name(s)} {100 * s["pck@0.5"]:.1f}'
                      for s in result['stages'])
  text = f'{result.get("metric", "PCK@0.5")} (%) per output: {outputs}'
  if 'visibility' in result:
    text += f'; visibility AP {100 * result["visibility"]["ap"]:.1f}'
  return text


def lost_warnings(result) -> list[str]:
  """A warning per output that has lost a part (``metrics.lost_parts``)."""
  out = []
  for s in result['stages']:
    lost = metrics.lost_parts(s)
    if lost:
      out.append(f'warning: {_output_name(s)} has lost {", ".join(lost)} (PCKh@0.5 below '
                 f'{metrics.LOST_BELOW:g}% on {"it" if len(lost) == 1 else "them"}, '
                 f'{100 * s["pck@0.5"]:.1f}% on all '
                 'parts): a prediction map that died in training, zero on every crop if it '
                 'ends in a ReLU (model.output_relu), does not recover; another seed may not '
                 'lose it')
  return out


def _prepare_datasets(config):
  """Prepares (on first use) every dataset the run trains or evaluates on (a missing one names
  every missing component), and checks that each has the split the run reads (a user error
  before training, not a crash at the first evaluation)."""
  registry.get_builders(config)
  registry.check_splits(config)


class NonFinite(errors.UserError, FloatingPointError):
  """The model diverged: a non-finite loss or non-finite outputs (with config.on_nan='stop')."""


def train_and_evaluate(config, workdir: str):
  """Trains ``config`` into ``workdir``, resuming from its newest checkpoint if there is one.

  The config is checked first (core/validate.py: errors.BadFlag), then compared with the one
  the workdir's run was started with (training/identity.py: errors.ConfigMismatch), before
  anything is built or anything in the workdir is changed.

  Returns (state, final evaluation), or (state, None) when a SIGTERM to any process stopped the
  run: then every process has saved the same step and the same command resumes from it.
  """
  validate.check(config, jax.device_count())
  accepted = identity.check(config, workdir)
  if accepted:
    logging.warning('Continuing the run in %s with a changed config '
                    '(--config.allow_config_change=True):\n%s', workdir,
                    identity.format_differences(accepted))
  is_main = jax.process_index() == 0
  mesh = make_mesh()
  with distributed.StopSignal() as stop:
    return _train_and_evaluate(config, workdir, mesh, is_main, stop, accepted)


def _is_eval_step(config, step: int) -> bool:
  return step % config.eval_every_steps == 0 or step == config.num_train_steps


def _train_and_evaluate(config, workdir, mesh, is_main, stop, accepted=()):
  # ------------------------------------------------------------------------------ set-up --
  built = build(config, mesh)
  model, sched, state, abstract = built.model, built.schedule, built.state, built.abstract_state
  step_fn, eval_fn = built.train_step, built.eval_step
  checkpoint.check_workdir(workdir, abstract, config.keep_checkpoints)
  distributed.main_process_first(lambda: _prepare_datasets(config), 'prepare_data')
  # Restored through a read-only manager: a checkpoint that does not fit the config stops the
  # run before the trainer's manager cleans anything up.
  restored, start = checkpoint.restore_latest(
      checkpoint.manager(workdir, config.keep_checkpoints, read_only=True), abstract,
      mismatch_context=lambda: identity.mismatch_context(config, workdir))
  if restored is not None:
    state = restored
    logging.info('Resuming from the checkpoint at step %d in %s', start, workdir)
  elif config.init_from:  # a new run starting from another run's weights
    state = initialise_from(config, state, abstract, mesh)
  start = int(state.step)
  # What was logged after the restored step is logged again below, so it is dropped first.
  writer = metrics_writer.MetricsWriter(workdir, enabled=is_main, resume_step=start)
  grads = None
  if gradients.enabled(config):
    grads = gradients.Recorder(config, model, state.params, workdir, writer, start)
  if is_main:
    identity.write(config, workdir, start, accepted)
  rng = jax.random.key(config.seed + 1)
  result = None

  def evaluate(done):
    result = run_evaluation(config, state.variables, eval_fn, mesh, step=done)
    scalars = {f'eval/{k}/stage{s["stage"]}': s[k] for s in result['stages']
               for k in ('pck@0.5', 'visibility_ap', 'pck@0.5_visible', 'pck@0.5_occluded')
               if k in s}
    if scalars:  # none when the split has no labelled parts
      writer.write(done, scalars)
    if is_main:
      tqdm.tqdm.write(f'step {done}: {format_eval(result)}')
      for line in lost_warnings(result):
        tqdm.tqdm.write(line)
    return result

  # A run killed after saving an evaluation step but before evaluating it evaluates it now.
  if start and _is_eval_step(config, start) and distributed.broadcast_from_main(
      int(is_main and not writer.logged(start, 'eval/'))):
    result = evaluate(start)
  # Batches go onto the devices in a thread, ahead of the step that takes them.
  batches = feed.Prefetch(
      pipeline.as_numpy(pipeline.train_dataset(config, jax.process_index(),
                                               jax.process_count(), start)),
      functools.partial(shard_batch, mesh=mesh), size=2)
  # Steps' metrics stay on the devices until a log step, a checkpoint, an evaluation or the
  # end (feed.Window): the loop dispatches step after step without waiting for them.
  window, last = feed.Window(), None

  def look():
    """Fetches the window; stops at its first non-finite step (on_nan='stop')."""
    nonlocal last
    if not len(window):
      return
    fetched = window.fetch()
    for done_, m in fetched:
      if not m['finite']:
        bad = [t + 1 for t, v in enumerate(m['stage_loss']) if not np.isfinite(v)]
        where = f'stage {bad[0]} loss' if bad else 'gradients'
        if config.on_nan != 'skip':
          raise NonFinite(
              f'Non-finite {where} at step {done_}: loss={m["loss"]}, '
              f'per-stage={m["stage_loss"].tolist()}. The last good checkpoint is kept '
              f'in {workdir}; set --config.on_nan=skip to skip such steps.')
        logging.warning('Skipped step %d: non-finite %s.', done_, where)
    last = fetched[-1][1]

  # ----------------------------------------------------------------------------- training --
  # Saves are written in the background: by a thread of ours in one process, by orbax's
  # asynchronous saves across processes (orbax synchronises the processes when a save starts:
  # from a thread of ours, that would interleave with the steps' collectives).
  mngr = checkpoint.manager(workdir, config.keep_checkpoints,
                            asynchronous=jax.process_count() > 1)
  bar = tqdm.tqdm(total=config.num_train_steps, initial=start, disable=not is_main,
                  desc='train', unit='step', dynamic_ncols=True)
  t0, seen = time.time(), 0
  try:  # bar.close() in finally: an error's message starts on a line of its own
    for step in range(start, config.num_train_steps):
      batch = next(batches)
      if grads is not None and grads.due(step):
        grads.record(step, state, batch, rng)
      state, metrics = step_fn(state, batch, rng)
      done = step + 1
      window.add(done, metrics)
      seen += config.batch_size
      bar.update(1)
      boundary = done % config.log_every_steps == 0 or done == config.num_train_steps
      if boundary:
        look()
        rate = seen / (time.time() - t0)
        scalars = {'loss': float(last['loss']), 'learning_rate': float(sched(step)),
                   'grad_norm': float(last['grad_norm']), 'images_per_sec': rate}
        scalars.update({f'loss/stage{t + 1}': float(v)
                        for t, v in enumerate(last['stage_loss'])})
        writer.write(done, scalars)
        bar.set_postfix(loss=f'{scalars["loss"]:.4g}', img_s=f'{rate:.1f}')
        t0, seen = time.time(), 0
      if done % config.checkpoint_every_steps == 0 or done == config.num_train_steps:
        look()   # a checkpoint never holds a diverged state
        checkpoint.save(mngr, done, state, force=True, background=True)
      # SIGTERM on any process: every process saves this step and returns. One process alone
      # looks at every step; several agree at log steps (a collective: a host round trip).
      if stop.requested(poll=boundary):
        look()
        checkpoint.finish(mngr)
        if mngr.latest_step() != done:
          checkpoint.save(mngr, done, state, force=True)
        bar.close()
        writer.close()
        logging.warning('Stopped by SIGTERM after step %d; its checkpoint is in %s. Rerun the '
                        'same command to resume.', done, workdir)
        return state, None
      if _is_eval_step(config, done):
        look()
        result = evaluate(done)
        t0, seen = time.time(), 0
    look()
  except BaseException:
    # A save still being written is finished first: what the error message calls the last
    # good checkpoint is on disk when the process exits.
    try:
      checkpoint.finish(mngr)
    except Exception as e:  # pylint: disable=broad-except  (the first error is the one raised)
      logging.warning('The checkpoint being written when training stopped failed too: %s', e)
    raise
  finally:
    bar.close()
    batches.close()
  checkpoint.finish(mngr)
  # ------------------------------------------------------------------------------ results --
  if result is None:  # a finished run, rerun: its evaluation is logged already
    result = run_evaluation(config, state.variables, eval_fn, mesh, step=int(state.step))
  if is_main:
    _write_json(os.path.join(workdir, 'eval.json'), {'step': int(state.step), **result})
  if config.num_pictures and is_main:  # on host copies of the variables: no other process joins
    pictures.training_pictures(config, model, jax.device_get(state.variables), workdir)
  writer.close()
  return state, result


def _write_json(path, value):
  """Writes ``path`` atomically: a reader never sees half a file."""
  tmp = f'{path}.tmp.{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(value, f, indent=2)
  os.replace(tmp, path)
