"""The claims' runs: plan, skipping finished runs by their committed summaries, the seeds rule,
verdicts computed from the numbers, and the page's figures."""
import json
import os

import numpy as np
import pytest

from posemachines.analyses import claims as claims_lib
from posemachines.analyses import plan as plan_lib
from posemachines.analyses import report
from posemachines.analyses import summaries as S
from posemachines.core import skeleton
from posemachines.training import gradients as gradients_lib
from tests.conftest import tiny_config, tiny_recurrent_config

GRADIENTS = {'layers': (), 'every_steps': 2, 'at_steps': ()}


@pytest.fixture
def claims(tmp_path):
  data = str(tmp_path / 'no_data')  # the plan never reads the data
  return claims_lib.build(tiny_config(data, gradients=GRADIENTS), tiny_recurrent_config(data),
                          rf_kernels=((3, 1), (5, 5)))


def _claim(claims, key):
  return next(c for c in claims if c.key == key)


def _outputs(s):
  m = s.config.model
  return m.num_stages if m.name == 'cpm' else m.num_iterations + 1


def _gradient_summary(std_first, std_last, layers=('stage1/trunk/conv1', 'stage2/beliefs')):
  steps = [0, 2, 4]
  stds = {l: [10 * std_first, std_first, std_last] for l in layers}
  return {'layers': list(layers), 'steps': steps, 'epoch_steps': 4.0, 'size': {l: 100
                                                                              for l in layers},
          'std': stds, 'mean_abs': stds,
          'histogram': {l: {'limit': 1.0, 'counts': [[0] * 19 + [100] + [0] * 20] * 3}
                        for l in layers}}


def put(store, s, final, change=0.3, per_stage=None, visibility_ap=None, grads=None, cpu=600.0,
        pr=None, lost=()):
  """A hand-made summary of run ``s``: final-stage PCKh ``final`` (%), stage t below it by
  5 (T - t) points unless ``per_stage`` gives every stage, and an evaluation before the last
  ``change`` points lower."""
  n = _outputs(s)
  values = per_stage or [final - 5 * (n - 1 - t) for t in range(n)]
  parts = skeleton.get('cpm14').parts
  stages = [{'stage': t + 1, 'pck@0.5': v / 100,
             'per_part': {p: 0.0 if p in lost and t == n - 1 else v / 100 for p in parts}}
            for t, v in enumerate(values)]
  if visibility_ap is not None:
    for st in stages:
      st['visibility_ap'] = visibility_ap / 100
  steps = s.config.num_train_steps
  result = {'step': steps, 'num_people': 8, 'stages': stages,
            'history': [{'step': steps // 2, 'pck@0.5': [(v - change) / 100 for v in values]},
                        {'step': steps, 'pck@0.5': [v / 100 for v in values]}]}
  return store.write(s.label, s.key, summary={'parent': None}, eval_result=result,
                     time_info={'seconds': cpu / 2, 'cpu_seconds': cpu}, gradients=grads,
                     visibility=pr)


def put_setting(store, claim, setting, values, **kw):
  for seed, v in enumerate(values):
    for s in claim.settings[setting](seed):
      put(store, s, v, **kw)


# --------------------------------------------------------------------------- the plan --

def test_plan_lists_every_run_once_with_its_state_and_cpu_left(claims, tmp_path):
  store = S.Store(str(tmp_path / 'summaries'))
  plan = plan_lib.build(claims, store, str(tmp_path / 'runs'), seeds=2)
  labels = [p.spec.label for p in plan.runs]
  assert len(labels) == len(set(labels)) == len({p.spec.key for p in plan.runs})
  joint = next(p for p in plan.runs if p.spec.label == 'cpm_T2_joint_s0')
  # The base model's joint run serves four claims and is trained once.
  assert set(joint.claims) == {'gradients', 'refinement', 'stages', 'schemes',
                               'receptive_fields'}
  assert joint.spec.pictures and not plan.runs[labels.index('cpm_T2_joint_s1')].spec.pictures
  assert {'cpm_T2_stagewise1_s0', 'cpm_T2_stagewise2_s0', 'cpm_T2_finetune_s0',
          'recurrent_exclude_limbs_s1', 'cpm_rf3-1_s1', 'cpm_T6_joint_s1'} <= set(labels)
  finetune = plan.runs[labels.index('cpm_T2_finetune_s0')].spec
  assert finetune.parent.label == 'cpm_T2_stagewise2_s0'
  assert all(p.to_train and p.estimate_s > 0 for p in plan.runs)
  assert plan.undecided  # third seeds wait for the first two
  text = '\n'.join(plan_lib.describe(plan, store))
  assert f'0 of {len(labels)} runs finished' in text and 'CPU hours left' in text
  # --only restricts the runs to some claims.
  only = plan_lib.build(claims, store, str(tmp_path / 'runs'), 2, {'gradients'})
  assert [p.spec.label for p in only.runs] == ['cpm_T2_joint_s0', 'cpm_T2_final_only_s0',
                                               'cpm_T2_joint_s1', 'cpm_T2_final_only_s1']
  # ... or to single claims, by key.
  assert claims_lib.CLAIMS == tuple(c.key for c in claims)
  one = plan_lib.build(claims, store, str(tmp_path / 'runs'), 2, {'recurrent_iterations'})
  assert sorted(p.spec.label for p in one.runs) == sorted(
      f'recurrent_include{it}_s{seed}'
      for it in ('_it0', '_it1', '', '_half_it1', '_half_it2') for seed in (0, 1))
  half = next(p.spec for p in one.runs if p.spec.label == 'recurrent_include_half_it2_s0')
  assert tuple(half.config.model.widths) == (4,) * 7   # the tiny model's 8, halved
  assert half.config.model.num_iterations == 2
  # A finished run is listed as such, with its CPU time; an interrupted one with its step and
  # the CPU time its remaining steps need.
  put(store, joint.spec, 50.0, cpu=1200)
  final = plan.runs[labels.index('cpm_T2_final_only_s0')]
  os.makedirs(os.path.join(plan_lib.workdir(str(tmp_path / 'runs'), final.spec), 'checkpoints',
                           '2'))
  again = plan_lib.build(claims, store, str(tmp_path / 'runs'))
  text = '\n'.join(plan_lib.describe(again, store))
  line = next(l for l in text.splitlines() if l.startswith('cpm_T2_joint_s0 '))
  assert 'finished' in line and '20 min' in line
  line = next(l for l in text.splitlines() if l.startswith('cpm_T2_final_only_s0 '))
  assert 'interrupted at step 2' in line
  rate = plan_lib.rates(store, [joint.spec])  # measured on the finished run: 1200 s / 32 images
  assert rate['cpm'] == pytest.approx(1200 / 32 / plan_lib._size(joint.spec.config))
  assert again.runs[labels.index('cpm_T2_final_only_s0')].estimate_s == pytest.approx(
      plan_lib.estimate(final.spec, rate) / 2)  # half its steps left


def test_keys_follow_the_config_and_the_chain_not_the_checkout(claims, tmp_path):
  runs = claims[0].runs
  again = claims_lib.Runs(runs.cpm, runs.recurrent_base)
  assert [s.key for s in again.stagewise(0, True)] == [s.key for s in runs.stagewise(0, True)]
  assert runs.joint(2, 0)[0].key != runs.joint(2, 1)[0].key
  c = runs.cpm.copy_and_resolve_references()
  c.init_from = '/elsewhere/run'
  assert plan_lib.run_key(c) == plan_lib.run_key(runs.cpm)
  assert plan_lib.run_key(c, parent=runs.joint(2, 0)[0]) != plan_lib.run_key(c)


def _fake_runner(final=lambda s: 40.0 + 10 * s.config.seed):
  """Writes what a finished training run leaves in its workdir, without training."""
  calls = []

  def run(s, config, work):
    calls.append((s.label, config.init_from))
    steps = config.num_train_steps
    os.makedirs(os.path.join(work, 'checkpoints', str(steps)), exist_ok=True)
    n = _outputs(s)
    v = final(s) / 100
    parts = skeleton.get('cpm14').parts
    with open(os.path.join(work, 'eval.json'), 'w') as f:
      json.dump({'step': steps, 'num_people': 8, 'stages': [
          {'stage': t + 1, 'pck@0.5': v, 'per_part': {p: v for p in parts}}
          for t in range(n)]}, f)
    with open(os.path.join(work, 'metrics.jsonl'), 'w') as f:
      for step, x in ((steps // 2, v - 0.002), (steps, v)):
        f.write(json.dumps({'step': step, **{f'eval/pck@0.5/stage{t + 1}': x
                                             for t in range(n)}}) + '\n')
    with open(os.path.join(work, S.CPU_TIME), 'w') as f:
      json.dump({'seconds': 5.0, 'cpu_seconds': 9.0, 'attempts': 1, 'load_average': []}, f)
    if config.gradients.every_steps:
      rng = np.random.default_rng(config.seed)
      scale = 1.0 if config.loss.intermediate_supervision else 0.1
      gradients_lib.save(os.path.join(work, gradients_lib.FILENAME), [0, 2],
                         {'stage1/trunk/conv1': [scale * rng.normal(size=50) for _ in range(2)],
                          'stage2/beliefs': [rng.normal(size=50) for _ in range(2)]}, 4.0)
  return run, calls


def test_finished_runs_are_skipped_by_their_summaries_alone(claims, tmp_path):
  store = S.Store(str(tmp_path / 'summaries'))
  runs_dir = str(tmp_path / 'runs')
  make = lambda: plan_lib.build(claims, store, runs_dir, 2, {'gradients'})  # noqa: E731
  runner, calls = _fake_runner()
  saved = []
  trained = plan_lib.execute(make, store, runs_dir, runner=runner, max_runs=3,
                             on_saved=lambda s, d: saved.append(os.path.basename(d)))
  assert [s.label for s in trained] == ['cpm_T2_joint_s0', 'cpm_T2_final_only_s0',
                                        'cpm_T2_joint_s1']
  assert saved == [f'{s.label}-{s.key}' for s in trained]
  d = store.dir(trained[0].key)
  assert sorted(os.listdir(d)) == sorted([S.EVAL, S.TIME, S.GRADIENTS, S.SUMMARY])
  loaded = store.load(trained[0].key)
  assert [h['step'] for h in loaded['eval']['history']] == [2, 4]
  assert loaded['time']['cpu_seconds'] == 9.0 and loaded['gradients']['steps'] == [0, 2]
  assert sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) < 20_000
  # The rest of the claim; a fresh checkout (no runs directory) trains nothing again.
  plan_lib.execute(make, store, runs_dir, runner=runner)
  assert len(calls) == 4
  fresh = str(tmp_path / 'fresh_runs')

  def fail(*args):
    raise AssertionError(f'trained {args[0].label} again')
  assert plan_lib.execute(lambda: plan_lib.build(claims, store, fresh, 2, {'gradients'}),
                          store, fresh, runner=fail) == []
  assert all(p.finished for p in plan_lib.build(claims, store, fresh, 2, {'gradients'}).runs)


def test_a_failed_run_is_reported_and_the_others_go_on(claims, tmp_path, capsys):
  store = S.Store(str(tmp_path / 'summaries'))
  runs_dir = str(tmp_path / 'runs')
  runner, calls = _fake_runner()

  def flaky(s, config, work):
    if s.label in ('cpm_T2_joint_s0', 'cpm_T2_stagewise1_s1'):
      raise FloatingPointError('Non-finite stage 1 loss')
    runner(s, config, work)
  plan_lib.execute(lambda: plan_lib.build(claims, store, runs_dir, 2, {'schemes'}), store,
                   runs_dir, runner=flaky)
  assert 'cpm_T2_joint_s0 failed: FloatingPointError: Non-finite stage 1 loss' in \
      capsys.readouterr().out
  # Neither failed run is saved, nor the phases that start from the second.
  labels = sorted(c[0] for c in calls)
  assert 'cpm_T2_final_only_s0' in labels and 'cpm_T2_stagewise2_s0' in labels
  assert not {'cpm_T2_stagewise2_s1', 'cpm_T2_finetune_s1'} & set(labels)
  assert not store.finished(claims[0].runs.joint(2, 0)[0].key)


def test_a_chain_retrains_a_finished_parent_whose_checkpoint_is_gone(claims, tmp_path):
  store = S.Store(str(tmp_path / 'summaries'))
  runs_dir = str(tmp_path / 'runs')
  chain = claims[0].runs.stagewise(0, True)
  put(store, chain[0], 30.0)  # phase 1 finished in another checkout
  put(store, claims[0].runs.joint(2, 0)[0], 50.0)
  make = lambda: plan_lib.build(claims, store, runs_dir, 2, {'schemes'})  # noqa: E731
  first = next(p for p in make().runs if p.spec.key == chain[0].key)
  assert first.finished and first.retrain
  runner, calls = _fake_runner()
  plan_lib.execute(make, store, runs_dir, runner=runner, max_runs=3)
  assert [c[0] for c in calls] == ['cpm_T2_stagewise1_s0', 'cpm_T2_stagewise2_s0',
                                   'cpm_T2_finetune_s0']
  assert calls[0][1] == ''
  assert calls[1][1] == os.path.abspath(plan_lib.workdir(runs_dir, chain[0]))
  assert calls[2][1] == os.path.abspath(plan_lib.workdir(runs_dir, chain[1]))
  assert store.load(chain[0].key)['eval']['stages'][-1]['pck@0.5'] == 0.3  # kept as it was


def test_convergence_compares_with_the_evaluation_a_full_interval_earlier():
  history = [{'step': s, 'pck@0.5': [v / 100]} for s, v in ((500, 60), (1000, 70), (1250, 70.5))]
  loaded = {'eval': {'history': history}, 'summary': {'config': {'eval_every_steps': 500}}}
  assert S.last_change(loaded) == pytest.approx(10.5) and not S.converged(loaded)
  loaded['summary']['config']['eval_every_steps'] = 250
  assert S.last_change(loaded) == pytest.approx(0.5) and S.converged(loaded)
  assert S.last_change({'eval': {'history': history[:1]}}) is None


# ------------------------------------------------------------------------ seeds rule --

def test_third_seed_where_two_settings_are_within_twice_their_spread(claims, tmp_path):
  store = S.Store(str(tmp_path / 'summaries'))
  stages = _claim(claims, 'stages')
  need, waiting = claims_lib.seeds_needed(stages, store, 2)
  assert set(need.values()) == {2} and len(waiting) == 12
  for t, values in zip(range(1, 7), ([40, 41], [50, 51], [60, 64], [63, 65], [80, 81],
                                     [90, 90.5])):
    put_setting(store, stages, f'T={t}', values)
  need, waiting = claims_lib.seeds_needed(stages, store, 2)
  heavy = [f'T={t}{claims_lib.HEAVY}' for t in claims_lib.STAGE_CHECK_TS]
  wide = [f'T={t}{claims_lib.WIDE}' for t in claims_lib.STAGE_CHECK_TS]
  long = [f'T={t}{claims_lib.LONG}' for t in claims_lib.STAGE_CHECK_TS]
  assert waiting == sorted(heavy + wide + long)   # the checks' pairs have no seeds yet
  for name, values in zip(heavy + wide + long, ([70, 70.5], [75, 76], [71, 71.5], [76, 77],
                                                [72, 72.5], [77, 78])):
    put_setting(store, stages, name, values)
  need, waiting = claims_lib.seeds_needed(stages, store, 2)
  # T=3 (62 ± 2.8) and T=4 (64 ± 1.4) differ by 2 < 2 x 2.8; every other pair is far apart.
  assert need == {'T=1': 2, 'T=2': 2, 'T=3': 3, 'T=4': 3, 'T=5': 2, 'T=6': 2, heavy[0]: 2,
                  heavy[1]: 2, wide[0]: 2, wide[1]: 2, long[0]: 2, long[1]: 2} and not waiting
  plan = plan_lib.build([stages], store, str(tmp_path / 'runs'), 2)
  todo = [p.spec.label for p in plan.runs if p.to_train]
  assert sorted(todo) == ['cpm_T3_joint_s2', 'cpm_T4_joint_s2']
  assert claims_lib.evaluate(stages, store).text == 'not yet run (24 of 26 runs finished)'
  # The decision stays once the third seeds are in, whatever they say.
  for t in (3, 4):
    put(store, stages.settings[f'T={t}'](2)[0], 70.0)
  assert claims_lib.seeds_needed(stages, store, 2)[0]['T=3'] == 3
  assert claims_lib.evaluate(stages, store).finished == 26
  # --seeds=3 asks for three everywhere.
  assert set(claims_lib.seeds_needed(stages, store, 3)[0].values()) == {3}


# -------------------------------------------------------------------------- verdicts --

def _verdict(claim, store):
  return claims_lib.evaluate(claim, store).text


def _put_stages(store, stages, values, heavy=(60, 60.5), wide=(62, 62.5), long=(64, 64.5)):
  """Three seeds of T=1..6 from ``values``, of the heavy-occlusion check from ``heavy``, of
  the wide-features check from ``wide`` and of the twice-the-steps check from ``long`` (None:
  none; its runs are the sweep's at twice its schedule, so a test that puts those leaves it)."""
  for t, v in zip(range(1, 7), values):
    put_setting(store, stages, f'T={t}', [v, v + 1, v + 0.5])
  for suffix, vs in ((claims_lib.HEAVY, heavy), (claims_lib.WIDE, wide),
                     (claims_lib.LONG, long)):
    if vs is None:
      continue
    for t, v in zip(claims_lib.STAGE_CHECK_TS, vs):
      put_setting(store, stages, f'T={t}{suffix}', [v, v + 1, v + 0.5])


def test_stage_verdicts_follow_the_numbers(claims, tmp_path):
  stages = _claim(claims, 'stages')
  store = S.Store(str(tmp_path / 'a'))
  assert _verdict(stages, store) == 'not yet run (0 of 24 runs finished)'  # 2 seeds each
  # Three seeds each: neighbours within twice their spread get a third seed anyway.
  _put_stages(store, stages, (50, 60, 70, 80, 90, 90.5))
  text = _verdict(stages, store)
  assert text.startswith('holds: the final stage\'s accuracy rises with every stage up to 5 '
                         'and the gain from 5 to 6 is +0.5 points (T=1 50.5 ± 0.7, T=2 60.5')
  assert text.endswith('T=6 91.0 ± 0.5)')
  dip = S.Store(str(tmp_path / 'b'))
  _put_stages(dip, stages, (50, 60, 70, 65, 80, 81))
  text = _verdict(stages, dip)
  assert text.startswith(
      'does not hold, because the final stage\'s accuracy does not rise from T=3 to T=4 '
      '(T=1 50.5 ± 0.7')
  # Why: the receptive fields of the stages against the paper's model's, and the check.
  fields = stages.runs.stage_fields()
  assert fields['paper'][0][:2] == [167.0, 407.0] and fields['paper'][1] == 368
  assert ('/'.join(f'{f:.0f}' for f in fields['model'][0]) + ' px of the '
          f'{fields["model"][1]:.0f}-px crop here') in text
  assert 'the paper\'s stages reach the whole crop sooner than these' in text   # tiny crops
  # On heavy occlusion T=6 gains +0.5 over T=4 (60.5 -> 61.0): no more than on the default data.
  assert ('check on heavy occlusion, whose hidden parts must be placed from the rest of the '
          'body: T=4 60.5 ± 0.5, T=6 61.0 ± 0.5 (+0.5, '
          'against +16.0 on the default data): more stages do not add accuracy beyond T=4') in text
  # With features twice as wide T=6 gains +0.5 over T=4 (62.5 -> 63.0): not the reason either.
  wide = stages.runs.wide_text()
  m = stages.runs.cpm.model
  assert wide == (f'trunk {"/".join(str(w) for w in m.trunk_widths)} -> '
                  f'{"/".join(str(2 * w) for w in m.trunk_widths)} channels, stage features '
                  f'{m.stage_feature_width} -> {2 * m.stage_feature_width}')
  assert stages.settings[f'T=6{claims_lib.WIDE}'](0)[0].config.model.trunk_widths == tuple(
      2 * w for w in m.trunk_widths)
  assert (f'check with the shared image features twice as wide ({wide}): T=4 62.5 ± 0.5, '
          'T=6 63.0 ± 0.5 (+0.5, against +16.0 with the default widths; -3.0 at T=4 and -18.5 '
          'at T=6 over the default widths): wider shared features do not make the stages after '
          '4 pay either') in text
  # With twice the steps T=6 gains +0.5 over T=4 (64.5 -> 65.0): the schedule is not it.
  base_steps = stages.settings['T=4'](0)[-1].config.num_train_steps
  long_steps = stages.settings[f'T=4{claims_lib.LONG}'](0)[-1].config.num_train_steps
  assert long_steps == 2 * base_steps
  assert (f'check with twice the steps ({long_steps:,} steps): T=4 64.5 ± 0.5, T=6 65.0 ± 0.5 '
          f'(+0.5, against +16.0 ({base_steps:,} steps); -1.0 at T=4 and -16.5 at T=6 over '
          'the shorter schedule): training twice as long does not make the stages after 4 pay '
          'either, so the schedule is not the reason') in text
  assert text.endswith('the width of the shared features and the length of the schedule are '
                       'ruled out, and the cause of the flat curve beyond T=4 is not found')
  # A check still training is left out of the account until its runs have finished.
  pending = S.Store(str(tmp_path / 'b0'))
  _put_stages(pending, stages, (50, 60, 70, 65, 80, 81), long=None)
  result = claims_lib.evaluate(stages, pending)
  assert result.status == 'does not hold' and (result.finished, result.total) == (26, 30)
  assert result.text.endswith(
      'wider shared features do not make the stages after 4 pay either, so the features\' '
      'width is not the reason (left out until their runs have finished: "T=4, twice the '
      'steps", "T=6, twice the steps"; 0 of 4 runs finished)')
  # Its finished seeds still show in the table, marked as left out, but not in the verdict.
  name = 'T=6' + claims_lib.LONG
  put_setting(pending, stages, name, [70])
  result = claims_lib.evaluate(stages, pending)
  assert result.stats[name].n == 0 and result.held[name].values == [70.0]
  assert result.text.endswith('; 1 of 4 runs finished)')
  row = next(l for l in report.table_stages(result) if l.startswith('| 6, twice the steps |'))
  assert f'| 1/{result.seeds[name]} (left out until all have run) | 70.0' in row, row
  narrow = S.Store(str(tmp_path / 'b1'))
  _put_stages(narrow, stages, (50, 60, 70, 80, 79, 80), wide=(81, 86))
  text = _verdict(stages, narrow)
  assert ('(+5.0, against +0.0 with the default widths; +1.0 at T=4 and +6.0 at T=6 over the '
          'default widths): with wider features to share the stages after 4 add accuracy, so '
          'the narrow image features that every stage of this small model reads are why the '
          'gains stop there') in text
  assert 'twice the steps' not in text   # the first check that explains the curve ends it
  short = S.Store(str(tmp_path / 'b3'))
  _put_stages(short, stages, (50, 60, 70, 80, 79, 80), long=(82, 87))
  text = _verdict(stages, short)
  assert ('(+5.0, against +0.0 (' in text and 'over the shorter schedule): trained longer, the '
          'stages after 4 add accuracy, so the schedule at which the shallower models converge '
          'is too short for the deeper ones, and that is why the gains stop there') in text
  rises = S.Store(str(tmp_path / 'b2'))
  _put_stages(rises, stages, (50, 60, 70, 80, 79, 80), heavy=(60, 66))
  text = _verdict(stages, rises)
  assert text.startswith('does not hold, because the final stage\'s accuracy does not rise '
                         'from T=4 to T=5')
  assert ('; inside the T=6 model stage 4 reaches 70.5 against 80.5 as the last stage of T=4, '
          'and its stages 5-6 bring it to 80.5: the extra stages make up for weaker earlier '
          'stages rather than adding to them;') in text
  assert ('(+6.0, against +0.0 on the default data): where the data needs the context that '
          'later stages bring, the stages after 4 add accuracy') in text
  late = S.Store(str(tmp_path / 'c'))
  _put_stages(late, stages, (50, 60, 70, 75, 78, 85))
  assert 'the gain from T=5 to T=6 (+7.0) is not smaller than from T=4 to T=5 (+3.0)' in \
      _verdict(stages, late)
  # A run whose final evaluation moved by more than a point leaves the claim unsettled.
  put(late, stages.settings['T=2'](1)[0], 61.0, change=2.5)
  assert _verdict(stages, late).startswith(
      'not settled, because 1 of its runs did not converge (final evaluation more than 1.5 '
      'points from the one before: cpm_T2_joint_s1 (+2.5))')


def test_the_analyses_stage_outputs_see_the_whole_crop_from_stage_2_as_the_papers():
  """The fields the stage verdict quotes, on the real base of the analyses."""
  import importlib.util
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  spec = importlib.util.spec_from_file_location(
      'analyses_cpu', os.path.join(root, 'experiments', 'analyses_cpu.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  fields = claims_lib.Runs(module.get_config(), None).stage_fields()
  assert fields['model'] == ([83.0, 131.0, 179.0, 227.0, 275.0, 323.0], 96.0)
  assert fields['paper'][0][:2] == [167.0, 407.0]   # the paper: 160 px, then about 400 px
  assert claims_lib._stage_why({}, fields) == (  # noqa: SLF001
      '. The outputs of stages 1-6 see 83/131/179/227/275/323 px of the 96-px crop here and '
      '167/407/647/887/1127/1367 px of the 368-px crop in the paper\'s model: from stage 2 '
      'here and stage 2 there every output sees the whole crop, so the stages after that add '
      'depth and refinement, not field, in both, and the receptive field is not why the gains '
      'stop earlier here')


def test_every_table_shows_the_finished_seeds_of_a_check_still_training(claims, tmp_path):
  tables = {'stages': report.table_stages, 'schemes': report.table_schemes,
            'receptive_fields': report.table_receptive_fields,
            'recurrent_iterations': report.table_iterations,
            'recurrent_limbs': report.table_limbs}
  with_checks = [c for c in claims if c.checks]
  assert {c.key for c in with_checks} <= set(tables) and len(with_checks) >= 4
  for claim in with_checks:
    store = S.Store(str(tmp_path / claim.key))
    check = claim.checks[0]
    q = next(q for q in claim.quantities if q.setting == check)
    put_setting(store, claim, check, [70])       # one seed of the check, nothing else
    result = claims_lib.evaluate(claim, store)
    assert result.stats[q.name].n == 0 and result.held[q.name].values == [70.0], claim.key
    rows = [l for l in tables[claim.key](result)
            if f'| 1/{result.seeds[check]} (left out until all have run) |' in l]
    assert len(rows) == 1 and '70.0' in rows[0], (claim.key, rows)
    # Without it, the row reads as not run.
    empty = claims_lib.evaluate(claim, S.Store(str(tmp_path / (claim.key + '_empty'))))
    assert not any('left out until all have run' in l for l in tables[claim.key](empty))


def test_scheme_gradient_and_receptive_field_verdicts(claims, tmp_path):
  store = S.Store(str(tmp_path / 's'))
  schemes = _claim(claims, 'schemes')
  # (iii)'s chain starts with (ii)'s phases: (ii) is written after it.
  for setting, values in (('joint', [80, 82, 81]), ('stagewise_finetune', [79, 80, 79.5]),
                          ('stagewise', [70, 71, 70.5]), ('final_only', [60, 62, 61]),
                          ('joint_long', [83, 84, 83.5])):
    put_setting(store, schemes, setting, values)
  # The SGD check not run yet: the claim is decided on its own settings, the verdict says so.
  text = _verdict(schemes, store)
  assert text.startswith('holds: (i) 81.0 ± 1.0 beats every other scheme')
  assert text.endswith('(left out until their runs have finished: "joint_sgd", '
                       '"final_only_sgd"; 0 of 4 runs finished)')
  assert claims_lib.evaluate(schemes, store).finished == 16
  put_setting(store, schemes, 'joint_sgd', [78, 79, 78.5])
  put_setting(store, schemes, 'final_only_sgd', [60, 61, 60.5])
  text = _verdict(schemes, store)
  assert text.startswith('holds: (i) 81.0 ± 1.0 beats every other scheme; (ii) stage-wise ends '
                         'below (i) at 70.5 ± 0.7; (iii) reaches 79.5 ± 0.5')
  assert text.endswith('(iv) final-stage loss only is the worst at 61.0 ± 1.4')  # no check said
  put_setting(store, schemes, 'final_only', [85, 86, 85.5])
  text = _verdict(schemes, store)
  assert 'does not beat (iv)' in text
  assert text.endswith(
      '(iv) final-stage loss only is not the worst at 85.5 ± 0.7, and with SGD it falls '
      'further behind joint training (check with SGD and momentum, the paper\'s optimiser: (i) '
      '78.5 ± 0.7, (iv) 60.5 ± 0.7: (iv) -18.0 points from (i), against +4.5 with Adam): '
      'Adam, whose per-parameter steps do not shrink with the gradients, makes up for the '
      'gradients that vanish towards the input without intermediate supervision, which is '
      'why (iv) is not the worst here')
  put_setting(store, schemes, 'final_only_sgd', [82, 83, 82.5])
  assert _verdict(schemes, store).endswith(
      '(iv) final-stage loss only is not the worst at 85.5 ± 0.7, and with SGD it falls no '
      'further behind beyond the seeds\' spread (check with SGD and momentum, the paper\'s '
      'optimiser: (i) 78.5 ± 0.7, (iv) 82.5 ± 0.7: (iv) +4.0 points from (i), against +4.5 with '
      'Adam): the optimiser is not the reason')
  sgd = schemes.settings['joint_sgd'](0)[0]
  assert sgd.label == 'cpm_T2_joint_sgd_s0' and not sgd.pictures
  assert (sgd.config.optim.name, sgd.config.optim.momentum) == ('sgd', 0.9)
  assert schemes.settings['final_only_sgd'](0)[0].config.optim.name == 'sgd'
  assert schemes.settings['joint'](0)[0].config.optim.name != 'sgd'

  grads = _claim(claims, 'gradients')
  g = S.Store(str(tmp_path / 'g'))
  for seed in (0, 1):
    put(g, grads.settings['joint'](seed)[0], 80, grads=_gradient_summary(0.1, 0.08))
    put(g, grads.settings['final_only'](seed)[0], 70,
        grads=_gradient_summary(0.1, 0.01 * (1 + seed)))
  text = _verdict(grads, g)
  assert text.startswith('holds: at stage1/trunk/conv1, nearest the input, the standard '
                         'deviation of the gradient values at the last recording (step 4) is '
                         '5.66 times that without intermediate supervision (the geometric mean '
                         'of the seeds\' ratios: 8.00, '
                         '4.00); from the first recording after initialisation (step 2) to the '
                         'last it went to 80% of its value with intermediate supervision and '
                         'to 15% without')
  put(g, grads.settings['final_only'](1)[0], 70, grads=_gradient_summary(0.1, 0.09))
  assert _verdict(grads, g) == 'not yet run (4 of 6 runs finished)'  # now within the spread
  put(g, grads.settings['joint'](2)[0], 80, grads=_gradient_summary(0.1, 0.08))
  put(g, grads.settings['final_only'](2)[0], 70, grads=_gradient_summary(0.1, 0.09))
  assert 'the claim needs a ratio of at least 2 in every seed' in _verdict(grads, g)

  rf = _claim(claims, 'receptive_fields')
  runs = rf.runs
  assert runs.receptive_field(3, 1) < runs.receptive_field(None, None)
  r = S.Store(str(tmp_path / 'r'))
  # Fields of 21 (3/1), 29 (base) and 51 px (5/5); the person is 43 px tall.
  put_setting(r, rf, '3/1', [40, 42])
  put_setting(r, rf, 'base', [50, 51])
  put_setting(r, rf, '5/5', [60, 61])
  assert _verdict(rf, r) == (
      'holds: accuracy rises up to a field of 51 px, the first of at least 90% of the person\'s '
      'height of 43 px, and gains at most +0.0 points beyond it (21 px 41.0 ± 1.4, 29 px 50.5 ± 0.7, '
      '51 px 60.5 ± 0.7)')
  put_setting(r, rf, '3/1', [70, 72])
  assert _verdict(rf, r).startswith('does not hold, because accuracy does not rise from the '
                                    'field of')


def test_recurrent_verdicts(claims, tmp_path):
  store = S.Store(str(tmp_path / 'rec'))
  occ, its, limbs, vis = (_claim(claims, k) for k in (
      'recurrent_occlusion', 'recurrent_iterations', 'recurrent_limbs',
      'recurrent_visibility'))
  for name, final, ap in (('include + limbs', 80, 95), ('exclude + limbs', 76, 97),
                          ('ignore + limbs', 78, 96)):
    put_setting(store, occ, name, [final, final + 1], visibility_ap=ap)
  put_setting(store, its, '2 iterations', [79, 79], per_stage=[70, 75, 75.5])
  assert _verdict(its, store) == 'not yet run (2 of 10 runs finished)'
  put_setting(store, its, '0 iterations', [68, 69])
  put_setting(store, its, '1 iteration', [74, 75], per_stage=[60, 74.5])
  assert _verdict(its, store).endswith(   # decided; the checks wait
      '(left out until their runs have finished: "1 iteration, half width", "2 iterations, '
      'half width"; 0 of 4 runs finished)')
  put_setting(store, its, '1 iteration, half width', [70, 70], per_stage=[60, 70])
  put_setting(store, its, '2 iterations, half width', [71, 71], per_stage=[60, 65, 71])
  put_setting(store, limbs, claims_lib.LIMB_CHECK, [81, 81])
  assert _verdict(occ, store) == ('holds: PCKh@0.5 of the last output: include 80.5 ± 0.7, '
                                  'exclude 76.5 ± 0.7, ignore 78.5 ± 0.7; excluding them costs '
                                  '4.0 points')
  assert _verdict(its, store) == (
      'holds: final-output PCKh@0.5 of separate include models without limbs: 0 iterations '
      '68.5 ± 0.7, 1 iteration 74.5 ± 0.0 (+6.0), 2 iterations 75.5 ± 0.0 (+1.0); the 2 '
      'iterations model\'s own outputs after the feed-forward module / each iteration: 70.0 ± '
      '0.0 / 75.0 ± 0.0 / 75.5 ± 0.0')
  assert its.settings['1 iteration'](0)[0].label == 'recurrent_include_it1_s0'
  assert its.settings['1 iteration'](0)[0].config.model.num_iterations == 1
  assert its.settings['2 iterations'](0)[0].label == 'recurrent_include_s0'
  assert _verdict(limbs, store) == ('holds: PCKh@0.5 of the last output 80.5 ± 0.7 with limb '
                                    'heatmaps, 75.5 ± 0.0 without')
  assert _verdict(vis, store).startswith('holds: visibility AP of the last output: include '
                                         '95.0 ± 0.0, exclude 97.0 ± 0.0')
  put_setting(store, vis, 'exclude + limbs', [76, 77], visibility_ap=94)
  assert _verdict(vis, store).startswith('does not hold, because ignore, not exclude, gives the '
                                         'best visibility AP')
  put_setting(store, its, '2 iterations', [79, 79], per_stage=[70, 75, 77])   # +2.5
  put_setting(store, its, '2 iterations, half width', [72.5, 72.5], per_stage=[60, 65, 72.5])
  assert _verdict(its, store).startswith(
      'does not hold, because the second iteration changes accuracy by more than a point, and '
      'not more in a narrower model, beyond the seeds\' spread (check: half as wide (')
  assert '1 iteration 70.0 ± 0.0, 2 iterations 72.5 ± 0.0 (+2.5)): the small model' in (
      _verdict(its, store))
  # The receptive fields of the three outputs, here and in the paper's model, from the models.
  (ours, h), (paper, hp) = its.runs.recurrent_fields()['model'], its.runs.recurrent_fields()['paper']
  assert paper == [82, 114, 146] and hp == pytest.approx(200 * 41 / 35 * 248 / 368)
  assert len(ours) == 3 and ours[0] < ours[1] < ours[2]
  v = _verdict(its, store)
  assert (f'the receptive fields of the feed-forward output / iteration 1 / iteration 2 are '
          f'{ours[0]:.0f}/{ours[1]:.0f}/{ours[2]:.0f} px of the {h:.0f}-px person') in v
  assert '146 px of the 158-px person (0.52/0.72/0.92) in the paper\'s model' in v
  said = ('so a field too small for the person is not the reason' if ours[1] / h >= 0.92 else
          'so the receptive field may be the reason')
  assert said in v
  st = claims_lib.stats(its, store, 2)
  small = {'model': ([40.0, 50.0, 60.0], 86.0), 'paper': ([82.0, 114.0, 146.0], 158.0)}
  assert claims_lib.decide_iterations(st, None, small)[1].startswith(
      'the second iteration changes accuracy by more than a point, and not more in a narrower')
  assert ('40/50/60 px of the 86-px person (0.47/0.58/0.70) here, 82/114/146 px of the 158-px '
          'person (0.52/0.72/0.92) in the paper\'s model: the second iteration widens a field '
          'smaller than the paper\'s last, so the receptive field may be the reason') in (
              claims_lib.decide_iterations(st, None, small)[1])
  wide = {'model': ([66.0, 90.0, 114.0], 86.0), 'paper': small['paper']}
  assert ('this model sees more of the person than the paper\'s after two, so a field too '
          'small for the person is not the reason: final-output') in (
              claims_lib.decide_iterations(st, None, wide)[1])
  put_setting(store, its, '2 iterations, half width', [70, 70], per_stage=[60, 65, 70])
  v = _verdict(its, store)
  assert 'and less in a narrower model (check: half as wide (0.00M parameters against ' in v
  assert ('1 iteration 70.0 ± 0.0, 2 iterations 70.0 ± 0.0 (+0.0)): its gain grows with the '
          'model\'s width') in v
  put_setting(store, its, '2 iterations, half width', [75, 75], per_stage=[60, 65, 75])
  assert ('(+5.0)): the second iteration adds depth a small model lacks, a gain that shrinks '
          'as the model widens; the receptive fields of') in _verdict(its, store)
  # Limb heatmaps that cost accuracy, and the check with larger limb blobs.
  put_setting(store, limbs, 'include + limbs', [72, 72])
  put_setting(store, limbs, claims_lib.LIMB_CHECK, [78, 78])
  v = _verdict(limbs, store)
  assert v.startswith('does not hold, because limb heatmaps do not add accuracy with the limb '
                      'blobs the paper\'s fractions of the limb length give at this crop size')
  assert '78.0 ± 0.0 with limb heatmaps (+1.0 against none)' in v
  put_setting(store, limbs, 'include, no limbs', [77, 77, 77])
  put_setting(store, limbs, claims_lib.LIMB_CHECK, [76.5, 77.5, 77])   # within 0.5 of none
  assert ('which is why they cost accuracy; with blobs at the paper\'s size in output pixels '
          'they cost nothing, but add no more than the seeds\' spread either') in (
              _verdict(limbs, store))
  put_setting(store, limbs, claims_lib.LIMB_CHECK, [74, 74])
  assert 'larger limb blobs reduce their cost without removing it' in _verdict(limbs, store)
  put_setting(store, limbs, 'include + limbs', [71.5, 72.5])   # spread 0.7
  put_setting(store, limbs, claims_lib.LIMB_CHECK, [72.2, 72.6])
  assert 'the blob size is not the reason' in _verdict(limbs, store)
  assert 'keeps the keypoint maps alive' not in _verdict(limbs, store)
  # Seeds of 'no limbs' that lost a part, none with limbs: the verdict says so.
  put(store, limbs.settings['include, no limbs'](1)[0], 70, lost=('r_hip',))
  v = _verdict(limbs, store)
  assert ('; but without limb heatmaps 1 of 3 seeds lost a part\'s map (left out of these '
          'numbers), with them none of 2 and 2 (whether limb supervision keeps the keypoint maps '
          'alive would take more seeds to tell): PCKh@0.5') in v
  blobs = limbs.settings[claims_lib.LIMB_CHECK](0)[0]
  assert blobs.label == 'recurrent_include_limbs_paperblobs_s0'
  base = limbs.settings['include + limbs'](0)[0].config.targets
  scale = 248 / blobs.config.data.crop_size
  assert blobs.config.targets.limb_along == pytest.approx(base.limb_along * scale)
  assert blobs.config.targets.limb_across == pytest.approx(base.limb_across * scale)


# ----------------------------------------------------------------------------- page --

def test_page_and_figures_from_hand_made_summaries(claims, tmp_path):
  store = S.Store(str(tmp_path / 'docs' / 'results' / 'runs'))
  page = str(tmp_path / 'docs' / 'results.md')
  figs = str(tmp_path / 'docs' / 'results')
  results = [claims_lib.evaluate(c, store) for c in claims]
  assert report.write(results, store, page, figs, 'python experiments/results.py') == []
  text = open(page).read()
  assert '| [Gradients across depth (CPM Fig. 5)](#gradients-across-depth-cpm-fig-5) | **not ' \
         'yet run** | 0 of 4 |' in text
  assert '(none finished yet)' in text
  # Every claim's runs finished, with numbers that make each claim hold.
  rng = np.random.default_rng(0)
  by_key = {c.key: c for c in claims}
  for seed in (0, 1):
    for t, v in zip(range(1, 7), (48, 56, 64, 72, 77, 80)):
      for s in by_key['stages'].settings[f'T={t}'](seed):
        put(store, s, v + seed, grads=_gradient_summary(0.1, 0.08))
    for suffix in claims_lib.STAGE_CHECKS:
      for t, v in zip(claims_lib.STAGE_CHECK_TS, (60, 65)):
        for s in by_key['stages'].settings[f'T={t}{suffix}'](seed):
          put(store, s, v + seed)
    for setting, v in (('stagewise_finetune', 54.2), ('stagewise', 45), ('final_only', 30),
                       ('joint_long', 60), ('joint_sgd', 50), ('final_only_sgd', 20)):
      for s in by_key['schemes'].settings[setting](seed):
        put(store, s, v + seed, grads=_gradient_summary(0.1, 0.01))
    put(store, by_key['receptive_fields'].settings['3/1'](seed)[0], 40 + seed)
    put(store, by_key['receptive_fields'].settings['5/5'](seed)[0], 70 + seed)
    for m, l in claims_lib.RECURRENT_VARIANTS:
      s = claims[0].runs.recurrent(m, l, seed)[0]
      pr = S.precision_recall_summary(rng.random(200), rng.random(200) < 0.9)
      final = {'include': 80, 'exclude': 76, 'ignore': 78}[m] - (0 if l else 3)
      put(store, s, final, per_stage=[v + 0.2 * seed for v in (final - 6, final - 0.5, final)],
          visibility_ap={'include': 95, 'exclude': 97, 'ignore': 96}[m], pr=pr)
    for iterations, final in ((0, 70), (1, 76.5)):   # separate models of the iteration claim
      s = claims[0].runs.recurrent('include', False, seed, iterations)[0]
      put(store, s, final + 0.2 * seed, visibility_ap=95)
    for setting, final in (('1 iteration, half width', 70), ('2 iterations, half width', 70.5)):
      put(store, by_key['recurrent_iterations'].settings[setting](seed)[0], final + 0.2 * seed)
    put(store, by_key['recurrent_limbs'].settings[claims_lib.LIMB_CHECK](seed)[0], 80 + seed)
  results = [claims_lib.evaluate(c, store) for c in claims]
  written = report.write(results, store, page, figs, 'python experiments/results.py')
  assert set(written) == {'gradients.png', 'gradient_spread.png', 'stages.png',
                          'refinement.png', 'schemes.png', 'receptive_fields.png',
                          'recurrent.png', 'convergence.png', 'limb_blobs.png'}
  for name in written:
    assert os.path.getsize(os.path.join(figs, name)) > 5000
  text = open(page).read()
  assert all(r.status == 'holds' for r in results), [r.text for r in results]
  assert text.count('| **holds** |') == len(claims)
  assert '![stages](results/stages.png)' in text or '](results/stages.png)' in text
  assert '| include + limbs | 2/2 | 74.1 ± 0.1 | 79.6 ± 0.1 | 80.1 ± 0.1 | 95.0 / 95.0 / ' \
         '95.0 |' in text
  assert '| 1 iteration | 2/2 | 71.6 ± 0.1 / 76.6 ± 0.1 | 76.6 ± 0.1 |' in text
  # The claims without a table of their own (occlusion, visibility) give their seeds.
  assert text.count('Seeds (kept / trained) of this claim: include + limbs 2/2, exclude + '
                    'limbs 2/2, ignore + limbs 2/2; the table above takes every finished seed '
                    'of a variant.') == 2
  # A figure the page no longer draws is removed.
  empty = S.Store(str(tmp_path / 'none'))
  report.write([claims_lib.evaluate(c, empty) for c in claims], empty, page, figs, 'cmd')
  assert not os.path.exists(os.path.join(figs, 'stages.png'))


# ------------------------------------------------------------------------ real training --

def test_a_real_tiny_run_leaves_a_small_summary(tfds_dir, tmp_path):
  config = tiny_config(tfds_dir, gradients=GRADIENTS, eval_every_steps=2)
  s = plan_lib.spec('tiny_joint_s0', config, pictures=True)
  store = S.Store(str(tmp_path / 'summaries'))
  runs_dir = str(tmp_path / 'runs')
  done = []

  def make():
    return plan_lib.Plan([plan_lib.Planned(s, ['x'], store.finished(s.key))], [], 0.0)
  plan_lib.execute(make, store, runs_dir, on_saved=lambda spec, d: done.append(d))
  loaded = store.load(s.key)
  assert [h['step'] for h in loaded['eval']['history']] == [2, 4]
  assert len(loaded['eval']['history'][-1]['pck@0.5']) == 2
  assert S.last_change(loaded) is not None
  g = loaded['gradients']
  assert g['steps'] == [0, 2] and g['layers'][0] == 'stage1/trunk/conv1'
  assert len(g['histogram']['stage1/trunk/conv1']['counts'][0]) == S.HISTOGRAM_BINS
  assert loaded['time']['cpu_seconds'] > 0 and loaded['time']['attempts'] == 1
  assert 'belief_maps' in loaded
  d = done[0]
  sizes = {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)}
  assert sum(v for f, v in sizes.items() if f.endswith('.json')) < 30_000, sizes
  # The workdir kept its checkpoints, and the same plan now trains nothing.
  assert S.checkpoint_step(plan_lib.workdir(runs_dir, s)) == 4
  assert plan_lib.execute(make, store, runs_dir) == []


def test_a_sigterm_during_a_runs_final_evaluation_stops_before_the_next_run(
    tfds_dir, tmp_path, monkeypatch):
  import signal
  from posemachines.training import distributed
  from posemachines.training import loop
  monkeypatch.setattr(distributed, '_NOTED', [])
  specs = [plan_lib.spec(f'tiny_joint_s{seed}', tiny_config(tfds_dir, eval_every_steps=2,
                                                            seed=seed)) for seed in (0, 1)]
  last = specs[0].config.num_train_steps
  store = S.Store(str(tmp_path / 'summaries'))
  runs_dir = str(tmp_path / 'runs')
  evaluate = loop.run_evaluation

  def late_sigterm(*args, step=None, **kw):   # the signal comes during the last evaluation
    if step == last:
      os.kill(os.getpid(), signal.SIGTERM)
    return evaluate(*args, step=step, **kw)
  monkeypatch.setattr(loop, 'run_evaluation', late_sigterm)

  def make():
    return plan_lib.Plan([plan_lib.Planned(s, ['x'], store.finished(s.key)) for s in specs],
                         [], 0.0)
  with pytest.raises(SystemExit, match='Stopped before tiny_joint_s1: a SIGTERM came while the '
                                       'run before it was finishing; rerun the same command'):
    plan_lib.execute(make, store, runs_dir)
  assert store.finished(specs[0].key)   # the run that was finishing is kept, summary and all
  assert not store.finished(specs[1].key)
  assert S.checkpoint_step(plan_lib.workdir(runs_dir, specs[1])) is None   # not started


def test_declaring_a_field_at_its_neutral_value_keeps_the_run_keys():
  from posemachines.core import configs
  config = configs.cpm_small()
  older = config.copy_and_resolve_references()   # as a version before these fields existed
  with older.unlocked():
    for field in plan_lib.NEUTRAL_FIELDS:
      *path, name = field.split('.')
      node = older
      for p in path:
        node = node[p]
      if name in node:
        del node[name]
  assert plan_lib.run_key(config) == plan_lib.run_key(older)
  # Away from its neutral value a field is part of the run's identity.
  bf16 = config.copy_and_resolve_references()
  bf16.precision = 'bf16'
  assert plan_lib.run_key(bf16) != plan_lib.run_key(config)


def test_attempt_clock_counts_killed_attempts_up_to_their_last_write(tmp_path):
  import time
  path = str(tmp_path / 'cpu_time.json')
  first = plan_lib.AttemptClock(path, every_s=0.05)
  t0 = time.time()
  while time.time() - t0 < 0.3:   # some CPU time
    sum(range(10_000))
  time.sleep(0.15)
  first._stop.set()   # pylint: disable=protected-access  (killed: no close, no final write)
  first._thread.join()   # pylint: disable=protected-access
  killed = json.load(open(path))
  assert killed['attempts'] == 1 and killed['seconds'] >= 0.3 and killed['cpu_seconds'] > 0.1
  assert killed['load_average'] == []
  second = plan_lib.AttemptClock(path, every_s=60)
  second.close()
  both = json.load(open(path))
  assert both['attempts'] == 2 and both['seconds'] >= killed['seconds']
  assert both['cpu_seconds'] >= killed['cpu_seconds'] and len(both['load_average']) == 1


def test_a_run_that_lost_a_part_is_left_out_and_replaced_by_the_next_seed(claims, tmp_path):
  store = S.Store(str(tmp_path / 'runs'))
  occ = _claim(claims, 'recurrent_occlusion')
  for name, final in (('include + limbs', 80), ('exclude + limbs', 72), ('ignore + limbs', 70)):
    put_setting(store, occ, name, [final, final + 1], visibility_ap=95)
  assert _verdict(occ, store).startswith('holds: PCKh@0.5 of the last output: include 80.5 ± 0.7')
  # Seed 1 of include lost its right hip (0% on it, 75% overall): left out, seed 2 trains.
  s1 = occ.settings['include + limbs'](1)[0]
  steps = s1.config.num_train_steps
  put(store, s1, 75, lost=('r_hip',), change=3.0)   # moving still, but left out: no longer runs
  assert occ.settings['include + limbs'](1)[0].config.num_train_steps == steps
  assert S.lost_parts(store.load(s1.key)) == ['r_hip']
  need, _ = claims_lib.seeds_needed(occ, store)
  assert need == {'include + limbs': 3, 'exclude + limbs': 2, 'ignore + limbs': 2}
  plan = plan_lib.build([occ], store, str(tmp_path / 'work'), 2)
  assert [p.spec.label for p in plan.to_train()] == ['recurrent_include_limbs_s2']
  assert _verdict(occ, store) == 'not yet run (6 of 7 runs finished)'
  put(store, occ.settings['include + limbs'](2)[0], 79)
  v = _verdict(occ, store)
  assert v.startswith('holds: PCKh@0.5 of the last output: include 79.5 ± 0.7')   # seeds 0, 2
  assert v.endswith('(left out, each replaced by the next seed, as its last output lost a part: '
                    'include + limbs: 1 of 3 seeds, recurrent_include_limbs_s1 (r_hip))')
  result = claims_lib.evaluate(occ, store)
  assert result.stats['include + limbs'].seeds == [0, 2] and result.seeds['include + limbs'] == 3
  # The lost maps are drawn from the run's final checkpoint, once, into its summary folder.
  runs_dir = str(tmp_path / 'work')
  drawn = []

  def draw(work, parts, path):
    drawn.append((work, parts))
    with open(path, 'wb') as f:
      f.write(b'png')
  specs = [p.spec for p in plan.runs]
  assert plan_lib.picture_lost_parts(specs, store, runs_dir, draw) == []   # no checkpoint
  os.makedirs(os.path.join(plan_lib.workdir(runs_dir, s1), 'checkpoints', str(steps)))
  assert plan_lib.picture_lost_parts(specs, store, runs_dir, draw) == [s1]
  assert drawn == [(plan_lib.workdir(runs_dir, s1), ['r_hip'])]
  assert plan_lib.picture_lost_parts(specs, store, runs_dir, draw) == []   # drawn already
  page = str(tmp_path / 'docs' / 'results.md')
  written = report.write([result], store, page, str(tmp_path / 'docs' / 'results'), 'cmd')
  text = open(page).read()
  assert 'lost_part.png' in written and '![a lost part](results/lost_part.png)' in text
  assert '| recurrent_include_limbs_s1 |' in text
  assert '| +3.0 | no (lost r_hip: left out) |' in text
  # A low output overall is not a lost part: a weak run counts as it is.
  assert S.lost_parts({'eval': {'stages': [{'pck@0.5': 0.2, 'per_part': {'r_hip': 0.0}}]}}) == []
  # Every replacement lost a part too: after MAX_LOST replacements the claim is not settled.
  for seed in range(1, 2 + claims_lib.MAX_LOST):
    put(store, occ.settings['include + limbs'](seed)[0], 75, lost=('r_hip', 'l_hip'))
  v = _verdict(occ, store)
  assert v.startswith(f'not settled, because include + limbs lost a part in more than '
                      f'{claims_lib.MAX_LOST} seeds: recurrent_include_limbs_s1 (r_hip, l_hip), ')
  assert claims_lib.seeds_needed(occ, store)[0]['include + limbs'] == 2 + claims_lib.MAX_LOST


def test_a_check_whose_runs_keep_losing_parts_is_given_up_and_the_claim_decided_without(
    claims, tmp_path):
  store = S.Store(str(tmp_path / 'runs'))
  its = _claim(claims, 'recurrent_iterations')
  assert set(its.checks) == {'1 iteration, half width', '2 iterations, half width'}
  put_setting(store, its, '0 iterations', [68, 69])
  put_setting(store, its, '1 iteration', [74, 75], per_stage=[60, 74.5])
  put_setting(store, its, '2 iterations', [79, 79], per_stage=[70, 75, 77])
  put_setting(store, its, '2 iterations, half width', [70, 71], per_stage=[60, 65, 70])
  half = '1 iteration, half width'
  for seed in range(1 + claims_lib.MAX_LOST):   # every seed loses a part
    put(store, its.settings[half](seed)[0], 65, per_stage=[60, 65], lost=('r_elbow',))
  need, _ = claims_lib.seeds_needed(its, store)
  assert need[half] == 1 + claims_lib.MAX_LOST   # no more seeds: the check is given up
  plan = plan_lib.build([its], store, str(tmp_path / 'work'), 2)
  assert plan.to_train() == []
  v = _verdict(its, store)
  assert v.startswith('does not hold, because the second iteration changes accuracy by more '
                      'than a point; the receptive fields')   # nothing said of the width
  assert (f'(the check "{half}" is given up: its runs lost a part in {1 + claims_lib.MAX_LOST} '
          f'of {1 + claims_lib.MAX_LOST} seeds)') in v
  # A main setting that keeps losing parts leaves the claim not settled.
  for seed in range(2, 3 + claims_lib.MAX_LOST):
    put(store, its.settings['0 iterations'](seed)[0], 65, lost=('r_hip',))
  put(store, its.settings['0 iterations'](1)[0], 65, lost=('r_hip',))
  assert _verdict(its, store).startswith('not settled, because 0 iterations lost a part in '
                                         f'more than {claims_lib.MAX_LOST} seeds')


def test_a_claims_schedule_is_computed_once_per_state_of_the_store(tmp_path):
  data = str(tmp_path / 'no_data')
  store = S.Store(str(tmp_path / 'runs'))
  stages = _claim(claims_lib.build(tiny_config(data), tiny_recurrent_config(data),
                                   rf_kernels=((3, 1), (5, 5)), store=store), 'stages')
  loads = []
  load = store.load
  store.load = lambda key: loads.append(key) or load(key)
  chains = list(stages.settings.values())   # T=1..6, then each check's two settings
  n = len(chains)
  assert n == 6 + len(claims_lib.STAGE_CHECK_TS) * len(claims_lib.STAGE_CHECKS)
  steps = [4] * (n - 2) + [8] * 2   # the last check trains twice the steps
  assert {c.factor() for c in chains} == {1}
  first = len(loads)
  # one look at every seed of every setting (3, and the seeds that may replace lost runs)
  assert first == n * (3 + claims_lib.MAX_LOST)
  for seed in range(3):
    assert [c(seed)[0].config.num_train_steps for c in chains] == steps
  assert len(loads) == first   # nothing finished since: no second look
  t3 = chains[2](0)[0]
  put(store, t3, 80.0, change=2.5)   # T=3 seed 0 did not converge
  assert [c.factor() for c in chains] == [2] * n   # the check follows: never shorter
  assert len(loads) > first
  put(store, t3, 80.0, change=0.1)   # rewritten, now converged: back to 1x
  assert [c(0)[0].config.num_train_steps for c in chains] == steps
  # A check's run that did not converge lengthens the check alone.
  h = chains[-1](0)[0]
  put(store, h, 70.0, change=2.5)
  assert [c.factor() for c in chains] == [1] * 6 + [2] * (n - 6)


def test_the_stage_verdict_looks_at_the_superseded_shorter_runs(tmp_path):
  data = str(tmp_path / 'no_data')
  store = S.Store(str(tmp_path / 'runs'))
  claims = claims_lib.build(tiny_config(data), tiny_recurrent_config(data),
                            rf_kernels=((3, 1), (5, 5)), store=store)
  stages = _claim(claims, 'stages')
  # At the base schedule T=4 and T=6 agree (80.5 over 3 seeds each); a T=5 seed did not
  # converge, so every setting trains again twice as long.
  _put_stages(store, stages, (50, 60, 70, 80, 81, 80), long=None)
  put(store, stages.settings['T=5'](1)[0], 81.0, change=2.5)
  assert stages.settings['T=4'](0)[0].label == 'cpm_T4_joint_x2_s0'
  steps = stages.runs.joint(4, 0)[0].config.num_train_steps
  for name, v in zip([f'T={t}' for t in range(1, 7)], (55, 65, 75, 86, 85, 86)):
    for seed in (0, 1, 2):
      put(store, stages.settings[name](seed)[0], v + seed)
  for suffix in claims_lib.STAGE_CHECKS:
    for t, v in zip(claims_lib.STAGE_CHECK_TS, (70, 70)):
      for seed in (0, 1, 2):
        put(store, stages.settings[f'T={t}{suffix}'](seed)[0], v + seed)
  text = _verdict(stages, store)
  assert text.startswith('does not hold, because the final stage\'s accuracy does not rise '
                         'from T=4 to T=5')
  assert (f'; the superseded runs of the shorter schedule ({steps:,} steps, seed 0 where not '
          'said otherwise): T=1 50.5 (3 seeds), T=2 60.5 (3 seeds), T=3 70.5 (3 seeds), '
          'T=4 80.5 (3 seeds), T=5 81.2 (3 seeds), T=6 80.5 (3 seeds), +0.0 from T=4 to T=6 '
          'against +0.0 at the longer one: the curve is as flat beyond T=4 at the shorter '
          'schedule, so training longer lifts every model but does not make more stages pay'
          ) in text
  # Where the shorter schedule's curve still rose, its deeper models only trained faster.
  rising = S.Store(str(tmp_path / 'runs2'))
  claims = claims_lib.build(tiny_config(data), tiny_recurrent_config(data),
                            rf_kernels=((3, 1), (5, 5)), store=rising)
  stages = _claim(claims, 'stages')
  _put_stages(rising, stages, (50, 60, 70, 75, 80, 85), long=None)
  put(rising, stages.settings['T=5'](1)[0], 80.0, change=2.5)
  for name, v in zip([f'T={t}' for t in range(1, 7)], (55, 65, 75, 86, 85, 86)):
    for seed in (0, 1, 2):
      put(rising, stages.settings[name](seed)[0], v + seed)
  for suffix in claims_lib.STAGE_CHECKS:
    for t, v in zip(claims_lib.STAGE_CHECK_TS, (70, 70)):
      for seed in (0, 1, 2):
        put(rising, stages.settings[f'T={t}{suffix}'](seed)[0], v + seed)
  assert ('+10.0 from T=4 to T=6 against +0.0 at the longer one: more stages paid at the '
          'shorter schedule, so the deeper models\' edge there is faster training') in \
      _verdict(stages, rising)


def test_a_setting_that_did_not_converge_is_trained_again_longer(tmp_path):
  data = str(tmp_path / 'no_data')
  store = S.Store(str(tmp_path / 'docs' / 'results' / 'runs'))
  claims = claims_lib.build(tiny_config(data, gradients={**GRADIENTS, 'at_steps': (3,)}),
                            tiny_recurrent_config(data), rf_kernels=((3, 1), (5, 5)),
                            store=store)
  stages = _claim(claims, 'stages')
  _put_stages(store, stages, (50, 60, 70, 80, 90, 90.5))
  first = stages.settings['T=5'](1)[0]
  assert first.label == 'cpm_T5_joint_s1' and first.config.num_train_steps == 4
  assert _verdict(stages, store).startswith('holds')
  # A seed of T=5 moved by 2.5 points at the end: every setting of the claim, every seed, trains
  # again twice as long, so that the settings compared share a schedule.
  put(store, first, 91.0, change=2.5)
  longer = stages.settings['T=5'](1)[0]
  assert longer.label == 'cpm_T5_joint_x2_s1' and longer.config.num_train_steps == 8
  assert tuple(longer.config.gradients.at_steps) == (7,)   # still before the last update
  assert stages.settings['T=4'](1)[0].label == 'cpm_T4_joint_x2_s1'
  other = _claim(claims, 'gradients')   # another claim on the same base run keeps its schedule
  assert other.settings['joint'](1)[0].label == 'cpm_T2_joint_s1'
  plan = plan_lib.build([stages], store, str(tmp_path / 'runs'), 2)
  todo = sorted(p.spec.label for p in plan.to_train())
  # T=4 and T=6 at 2x are the twice-the-steps check's runs at 1x: finished already.
  assert todo == sorted([f'cpm_T{t}_joint_x2_s{seed}' for t in (1, 2, 3, 5) for seed in (0, 1)]
                        + [f'cpm_T{t}_joint_{check}_x2_s{seed}' for t in claims_lib.STAGE_CHECK_TS
                           for check in ('heavy', 'wide') for seed in (0, 1)]
                        # the checks: never shorter than the claim ('long': twice as long)
                        + [f'cpm_T{t}_joint_x4_s{seed}' for t in claims_lib.STAGE_CHECK_TS
                           for seed in (0, 1)])
  states = {p.spec.label: p for p in plan.runs}
  assert states['cpm_T5_joint_s1'].superseded and not states['cpm_T5_joint_s1'].to_train
  assert states['cpm_T4_joint_s1'].superseded   # converged, but shorter than the others
  text = '\n'.join(plan_lib.describe(plan, store))
  # 12 + the heavy and wide checks' 8 (the long check's at 1x are the sweep's at 2x, not given up)
  assert 'superseded (trained longer)' in text and '20 superseded' in text
  assert _verdict(stages, store) == 'not yet run (4 of 24 runs finished)'
  # Converged at 2x: the claim is decided on the longer runs.
  for t, v in zip(range(1, 7), (55, 65, 75, 85, 95, 99)):
    for seed in (0, 1):
      put(store, stages.settings[f'T={t}'](seed)[0], v + seed)
  for suffix in claims_lib.STAGE_CHECKS:
    for t, v in zip(claims_lib.STAGE_CHECK_TS, (70, 80)):
      for seed in (0, 1):
        put(store, stages.settings[f'T={t}{suffix}'](seed)[0], v + seed)
  assert stages.settings['T=5'](0)[0].label == 'cpm_T5_joint_x2_s0'
  assert 'T=5 95.5 ± 0.7' in _verdict(stages, store)
  assert _verdict(stages, store).endswith(
      '(every setting trained with 2x the base schedule\'s steps, a run having not converged '
      'with the shorter one)')
  # Not converged at 2x either: 4x; not at 4x: the claim is not settled.
  put(store, stages.settings['T=5'](0)[0], 95, change=-3.0)
  assert stages.settings['T=1'](0)[0].config.num_train_steps == 16
  for seed in (0, 1):
    put(store, stages.settings['T=5'](seed)[0], 96, change=2.0)
  assert stages.settings['T=5'](0)[0].config.num_train_steps == 16   # no longer than 4x
  # 2 of T=5 and the long check's at 2x, which are the sweep's at 4x
  assert _verdict(stages, store).startswith('not yet run (6 of 24 runs finished)')
  for t in (1, 2, 3, 4, 6):
    for seed in (0, 1):
      put(store, stages.settings[f'T={t}'](seed)[0], 90)
  for suffix in claims_lib.STAGE_CHECKS:
    for t, v in zip(claims_lib.STAGE_CHECK_TS, (70, 80)):
      for seed in (0, 1):
        put(store, stages.settings[f'T={t}{suffix}'](seed)[0], v + seed)
  assert _verdict(stages, store).startswith(
      'not settled, because 2 of its runs did not converge (final evaluation more than 1.5 '
      'points from the one before: cpm_T5_joint_x4_s0 (+2.0), cpm_T5_joint_x4_s1 (+2.0))')
  # The page lists the superseded runs, counts their time and gives each setting's steps.
  page = str(tmp_path / 'docs' / 'results.md')
  report.write([claims_lib.evaluate(stages, store)], store, page,
               str(tmp_path / 'docs' / 'results'), 'python experiments/results.py')
  text = open(page).read()
  assert '| cpm_T5_joint_s1 |' in text and 'no (superseded: trained longer)' in text
  assert '| cpm_T4_joint_x2_s1 |' in text and 'yes (superseded: trained longer)' in text
  assert '| 5 | 16 | 2/2 |' in text and '| 4 | 16 | 2/2 |' in text
  # The sweep's and the checks' 2 seeds at 1x, 2x and 4x, 600 CPU s each (the third seeds at
  # 1x are not needed), the long check's at 1x and 2x being the sweep's at 2x and 4x: 20 + 20
  # + 24.
  assert '64 runs have finished so far: 10.7 CPU hours' in text
  # A chain (stage-wise then fine-tuning) is lengthened phase by phase, parents re-keyed.
  chain = claims_lib.lengthen(claims[0].runs.stagewise(0, True), 2)
  assert [s.label for s in chain] == ['cpm_T2_stagewise1_x2_s0', 'cpm_T2_stagewise2_x2_s0',
                                      'cpm_T2_finetune_x2_s0']
  assert chain[2].parent.key == chain[1].key and chain[1].parent.key == chain[0].key
  base = claims[0].runs.stagewise(0, True)
  assert [s.config.num_train_steps * 2 for s in base] == [s.config.num_train_steps
                                                         for s in chain]
  # (i) with as many steps as (iii) follows (iii) when the claim is trained longer.
  scheme = _claim(claims, 'schemes')
  steps = lambda setting: sum(s.config.num_train_steps  # noqa: E731
                              for s in scheme.settings[setting](0))
  assert steps('joint_long') == steps('stagewise_finetune') == sum(
      s.config.num_train_steps for s in base)
  for s in [s for seed in (0, 1) for s in scheme.settings['stagewise_finetune'](seed)]:
    put(store, s, 60, change=2.0)   # (iii) did not converge
  assert scheme.settings['stagewise_finetune'](0)[-1].label == 'cpm_T2_finetune_x2_s0'
  assert steps('joint_long') == steps('stagewise_finetune') == 2 * sum(
      s.config.num_train_steps for s in base)
  assert scheme.settings['joint_long'](0)[0].label == (
      f'cpm_T2_joint_{steps("joint_long") // 2}steps_x2_s0')
  assert scheme.settings['final_only'](0)[0].label == 'cpm_T2_final_only_x2_s0'


def test_a_check_that_did_not_converge_is_trained_longer_alone(tmp_path):
  data = str(tmp_path / 'no_data')
  store = S.Store(str(tmp_path / 'runs'))
  scheme = _claim(claims_lib.build(tiny_config(data), tiny_recurrent_config(data),
                                   rf_kernels=((3, 1), (5, 5)), store=store), 'schemes')
  steps = lambda name: scheme.settings[name](0)[-1].config.num_train_steps  # noqa: E731
  base = {name: steps(name) for name in scheme.settings}
  put(store, scheme.settings['joint_sgd'](0)[0], 50, change=3.0)   # the check: not converged
  assert {n: steps(n) // base[n] for n in scheme.settings} == {
      'joint': 1, 'stagewise': 1, 'stagewise_finetune': 1, 'final_only': 1, 'joint_long': 1,
      'joint_sgd': 2, 'final_only_sgd': 2}
  assert scheme.settings['final_only_sgd'](1)[0].label == 'cpm_T2_final_only_sgd_x2_s1'
  # A main setting that did not converge lengthens the claim, and the check with it.
  put(store, scheme.settings['final_only'](1)[0], 50, change=3.0)
  assert {steps(n) // base[n] for n in scheme.settings} == {2}
  # ... and the check follows no shorter than the claim even when it converged at 1x.
  put(store, scheme.settings['joint_sgd'].chain(0)[0], 50, change=0.1)
  assert steps('joint_sgd') // base['joint_sgd'] == 2


def test_older_recurrent_summaries_get_the_occluded_parts_split_from_their_checkpoint(
    claims, tmp_path, capsys):
  store = S.Store(str(tmp_path / 'summaries'))
  runs_dir = str(tmp_path / 'runs')
  occ = _claim(claims, 'recurrent_occlusion')
  s = occ.settings['include + limbs'](0)[0]
  put(store, s, 80.0, per_stage=[70.0, 75.0, 80.0], visibility_ap=95)
  specs = [p.spec for p in plan_lib.build([occ], store, runs_dir, 2).runs]
  calls = []

  def evaluate(config, work, values=(0.70, 0.75, 0.80)):
    calls.append(work)
    return {'stages': [{'pck@0.5': v, 'pck@0.5_visible': v + 0.01, 'pck@0.5_occluded': v - 0.2}
                       for v in values]}
  # No final checkpoint in the runs directory: nothing to evaluate.
  assert plan_lib.complete_occlusion_split(specs, store, runs_dir, evaluate) == [] and not calls
  os.makedirs(os.path.join(plan_lib.workdir(runs_dir, s), 'checkpoints',
                           str(s.config.num_train_steps)))
  # A checkpoint that does not give the summary's numbers again is not used.
  wrong = lambda config, work: evaluate(config, work, (0.7, 0.75, 0.79))  # noqa: E731
  assert plan_lib.complete_occlusion_split(specs, store, runs_dir, wrong) == []
  assert 'left as it is' in capsys.readouterr().out
  assert np.isnan(S.occluded_pck(store.load(s.key)))
  assert plan_lib.complete_occlusion_split(specs, store, runs_dir, evaluate) == [s]
  loaded = store.load(s.key)
  assert S.occluded_pck(loaded) == pytest.approx(60.0)
  assert S.visible_pck(loaded, 0) == pytest.approx(71.0) and S.pck(loaded) == pytest.approx(80)
  calls.clear()
  assert plan_lib.complete_occlusion_split(specs, store, runs_dir, evaluate) == [] and not calls
  # The verdict and the table give the occluded parts alone.
  for m, final in (('include', 80), ('exclude', 76), ('ignore', 78)):
    for seed in (0, 1):
      put(store, occ.settings[claims_lib.recurrent_name(m, True)](seed)[0], final + seed)
      store.add_to_eval(occ.settings[claims_lib.recurrent_name(m, True)](seed)[0].key,
                        [{'pck@0.5_visible': 0.9, 'pck@0.5_occluded': (final - 30) / 100}] * 3)
  text = _verdict(occ, store)
  assert '(on the occluded parts alone: include 50.0 ± 0.0, exclude 46.0 ± 0.0, ignore 48.0 ' \
         '± 0.0)' in text
  table = '\n'.join(report.table_recurrent(report.recurrent_stats(
      [claims_lib.evaluate(occ, store)])))
  assert '| 90.0 ± 0.0 / 46.0 ± 0.0 |' in table


def test_the_page_says_why_the_recurrent_claims_use_heavy_occlusion(tmp_path):
  from posemachines.core import overrides
  data = str(tmp_path / 'no_data')
  heavy = overrides.derive(tiny_recurrent_config(data), **{'data.synthetic_occlusion': 'heavy'})
  claims = claims_lib.build(tiny_config(data, gradients=GRADIENTS), heavy,
                            rf_kernels=((3, 1), (5, 5)))
  light = claims_lib.light_occlusion_runs(claims)
  assert sorted({name for name, _ in light}) == ['exclude + limbs', 'ignore + limbs',
                                                 'include + limbs']
  occ = _claim(claims, 'recurrent_occlusion')
  # The light runs are the ones a light base would train (their keys are the default data's).
  plain = claims_lib.build(tiny_config(data, gradients=GRADIENTS), tiny_recurrent_config(data))
  assert light[('include + limbs', 0)].key == _claim(
      plain, 'recurrent_occlusion').settings['include + limbs'](0)[0].key
  assert occ.settings['include + limbs'](0)[0].key != light[('include + limbs', 0)].key
  assert occ.settings['include + limbs'](0)[0].label == 'recurrent_heavy_include_limbs_s0'
  assert light[('include + limbs', 0)].label == 'recurrent_include_limbs_s0'
  assert claims_lib.light_occlusion_runs(plain) == {}
  store = S.Store(str(tmp_path / 'summaries'))
  pr = {'recall': [1.0], 'precision': [1.0], 'ap': 1.0, 'num_visible': 94, 'num_occluded': 6}
  for (name, seed), s in light.items():
    final, occluded = {'include + limbs': (80, 60), 'exclude + limbs': (79.5, 50),
                       'ignore + limbs': (79.8, 55)}[name]
    put(store, s, final + seed, visibility_ap=95)
    store.add_to_eval(s.key, [{'pck@0.5_visible': 0.8, 'pck@0.5_occluded': occluded / 100}] * 3)
    ev = json.load(open(os.path.join(store.dir(s.key), 'eval.json')))
    ev['visibility'] = pr
    json.dump(ev, open(os.path.join(store.dir(s.key), 'eval.json'), 'w'))
  results = [claims_lib.evaluate(c, store) for c in claims]
  page = str(tmp_path / 'docs' / 'results.md')
  written = report.write(results, store, page, str(tmp_path / 'docs' / 'results'), 'cmd')
  assert 'occlusion.png' in written
  text = open(page).read()
  assert '![occlusion levels](results/occlusion.png)' in text
  assert 'trained on the synthetic people with heavy occlusion' in text
  assert '### Why heavy occlusion' in text
  assert '| include + limbs | 2 | 80.5 ± 0.7 | 80.0 ± 0.0 | 60.0 ± 0.0 | 95.0 ± 0.0 |' in text
  assert ('With 6.0% of the annotated validation parts hidden, including occluded keypoints '
          'instead of excluding them changes PCKh@0.5 by +10.0 points on the occluded parts '
          'alone but by +0.5 on all parts.') in text
  # The light runs are in the convergence table, and their time in the total.
  assert 'yes (light occlusion: why heavy)' in text
  assert '6 runs have finished so far: 1.0 CPU hours' in text


def test_the_iteration_claim_on_heavy_occlusion_is_checked_on_light_occlusion(tmp_path):
  data = str(tmp_path / 'no_data')
  claims = claims_lib.build(tiny_config(data), tiny_recurrent_config(
      data, **{'data.synthetic_occlusion': 'heavy'}), rf_kernels=((3, 1), (5, 5)))
  its = _claim(claims, 'recurrent_iterations')
  light = its.settings['2 iterations, light occlusion'](0)[0]
  assert light.label == 'recurrent_include_light_it2_s0'
  assert light.config.data.synthetic_occlusion == 'light'
  assert its.settings['2 iterations'](0)[0].config.data.synthetic_occlusion == 'heavy'
  store = S.Store(str(tmp_path / 'runs'))
  for setting, values in (('0 iterations', [68, 69]), ('1 iteration', [74, 75]),
                          ('2 iterations', [77, 78]), ('1 iteration, half width', [70, 71, 70]),
                          ('2 iterations, half width', [70, 71, 70]),
                          ('1 iteration, light occlusion', [88, 89, 88])):
    put_setting(store, its, setting, values)
  v = _verdict(its, store)
  assert 'light occlusion, 1 iteration' not in v and v.endswith(
      '(left out until their runs have finished: "2 iterations, light occlusion"; 0 of 2 runs '
      'finished)')
  put_setting(store, its, '2 iterations, light occlusion', [88.5, 89.5, 88.5])
  v = _verdict(its, store)
  assert ('; with fewer occluded parts it adds little (check: on the default light occlusion, 1 '
          'iteration 88.3 ± 0.6, 2 iterations 88.8 ± 0.6 (+0.5)): the heavy occlusion') in v
  put_setting(store, its, '2 iterations, light occlusion', [91, 92, 91])
  assert 'also with fewer occluded parts (check: ' in _verdict(its, store)
