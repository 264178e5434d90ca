"""Every claim of the two papers, settled by our own runs: trains what is missing and writes
docs/results.md and its figures.

  python experiments/results.py [--workdir=workdirs/results]
      [--only=stages,schemes,gradients,receptive_fields,recurrent or claim keys] [--seeds=2]
      [--max_runs=N]
      [--plan] [--commit]

For every claim (posemachines/analyses/claims.py) it lists the runs needed with ``--seeds``
seeds per setting (a third where two compared settings are within twice their seeds' spread,
decided once the first two are in), trains those not yet finished one at a time through
training/runs.py in WORKDIR/runs (an interrupted run resumes from its checkpoint there), and
copies each finished run's summary (evaluations, time, gradient spread) into
docs/results/runs/<label>-<key>/. A run whose summary is there counts as finished, so a fresh
checkout skips it without its checkpoints. After every finished run, and at the end, it writes
docs/results.md and docs/results/*.png from every finished run, whatever --only says.

  --plan      print the runs, which are finished and the CPU time left; train nothing
  --max_runs  train at most N runs, then write the page
  --commit    git-commit each run's summary folder as soon as it is saved, and the page and
              figures at the end
  --report    only write the page from the summaries (train nothing)

The CPM runs start from experiments/analyses_cpu.py, the recurrent ones from
experiments/recurrent_analyses_cpu.py (--cpm_config, --recurrent_config).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from posemachines.analyses import claims as claims_lib  # noqa: E402
from posemachines.analyses import plan as plan_lib  # noqa: E402
from posemachines.analyses import report  # noqa: E402
from posemachines.analyses import summaries  # noqa: E402
from posemachines.core import config_files, errors  # noqa: E402

flags.DEFINE_string('workdir', 'workdirs/results', 'Training runs go to WORKDIR/runs.')
flags.DEFINE_list('only', list(claims_lib.GROUPS), 'Claims whose runs to train: '
                  + ','.join(claims_lib.GROUPS) + ', or single claims: '
                  + ','.join(claims_lib.CLAIMS) + '.')
flags.DEFINE_integer('seeds', 2, 'Seeds per setting (at least 2; a third where the seeds rule '
                     'asks for it).')
flags.DEFINE_integer('max_runs', None, 'Train at most this many runs.')
flags.DEFINE_bool('plan', False, 'Print the plan and the CPU time left; train nothing.')
flags.DEFINE_bool('report', False, 'Only write the page from the finished runs.')
flags.DEFINE_bool('commit', False, 'git-commit each summary as it is saved, the page at the end.')
flags.DEFINE_string('cpm_config', 'analyses_cpu', 'Base config of the CPM runs.')
flags.DEFINE_string('recurrent_config', 'recurrent_analyses_cpu',
                    'Base config of the recurrent runs.')
flags.DEFINE_string('summaries', os.path.join(ROOT, 'docs', 'results', 'runs'),
                    'Where the summaries of finished runs are kept.')
flags.DEFINE_string('page', os.path.join(ROOT, 'docs', 'results.md'), 'The page to write.')


def load_config(name: str):
  import importlib.util
  path = config_files.resolve(name)
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def git_commit(paths, message: str) -> None:
  """Commits ``paths`` only (other staged changes stay staged), retrying while the index is
  locked by another git command."""
  for attempt in range(10):
    add = subprocess.run(['git', 'add', '--', *paths], cwd=ROOT, capture_output=True, text=True)
    if add.returncode == 0:
      done = subprocess.run(['git', 'commit', '-q', '-m', message, '--', *paths], cwd=ROOT,
                            capture_output=True, text=True)
      if done.returncode == 0 or 'nothing to commit' in done.stdout + done.stderr:
        return
      err = done.stderr
    else:
      err = add.stderr
    if 'index.lock' not in err:
      print(f'git commit failed: {err.strip()}', flush=True)
      return
    time.sleep(3 + 3 * attempt)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  unknown = sorted(set(f.only) - set(claims_lib.GROUPS) - set(claims_lib.CLAIMS))
  if unknown:
    raise errors.BadFlag(f'--only: unknown {unknown}; choose from {",".join(claims_lib.GROUPS)} '
                         f'or single claims: {",".join(claims_lib.CLAIMS)}')
  if f.seeds < 2:
    raise errors.BadFlag('--seeds must be at least 2')
  store = summaries.Store(f.summaries)
  claims = claims_lib.build(load_config(f.cpm_config), load_config(f.recurrent_config),
                            store=store)
  runs_dir = os.path.join(f.workdir, 'runs')

  def make_plan():
    return plan_lib.build(claims, store, runs_dir, f.seeds, set(f.only))

  if f.plan:
    print('\n'.join(plan_lib.describe(make_plan(), store)))
    return
  fig_dir = os.path.join(os.path.dirname(f.page), 'results')

  def write_page():
    results = [claims_lib.evaluate(c, store, f.seeds) for c in claims]
    report.write(results, store, f.page, fig_dir, 'python experiments/results.py')
    return results

  planned = [p.spec for p in make_plan().runs]
  completed = plan_lib.complete_occlusion_split(
      planned + list(claims_lib.light_occlusion_runs(claims).values()), store, runs_dir)
  if completed and f.commit:
    git_commit([os.path.relpath(store.dir(s.key), ROOT) for s in completed],
               'results: PCKh of the visible and the occluded parts of '
               f'{len(completed)} finished runs, from their final checkpoints')
  drawn = plan_lib.picture_lost_parts(planned, store, runs_dir)
  if drawn and f.commit:
    git_commit([os.path.relpath(store.dir(s.key), ROOT) for s in drawn],
               f'results: pictures of the lost parts of {len(drawn)} finished runs, from their '
               'final checkpoints')
  if not f.report:
    def saved(s, d):
      plan_lib.picture_lost_parts([s], store, runs_dir)
      loaded = store.load(s.key)
      cpu = summaries.cpu_seconds(loaded) or 0
      print(f'  saved {os.path.relpath(d, ROOT)}: final-stage PCKh@0.5 '
            f'{summaries.pck(loaded):.1f}, {cpu / 60:.0f} CPU min', flush=True)
      if f.commit:
        git_commit([os.path.relpath(d, ROOT)],
                   f'results: {s.label} finished (final stage {summaries.pck(loaded):.1f} '
                   'PCKh@0.5, '
                   f'{cpu / 60:.0f} CPU min)')
      try:  # the page follows every finished run (committed at the end)
        write_page()
      except Exception as e:  # noqa: BLE001 - a drawing problem must not stop the training
        print(f'  could not write the page: {type(e).__name__}: {e}', flush=True)
    plan_lib.execute(make_plan, store, runs_dir, max_runs=f.max_runs, on_saved=saved)
  results = write_page()
  for r in results:
    print(f'{r.claim.title}: {r.text}')
  print(f'Wrote {f.page} and its figures in {fig_dir}')
  if f.commit:
    git_commit([os.path.relpath(f.page, ROOT), os.path.relpath(fig_dir, ROOT)],
               'results: page and figures from the finished runs')


if __name__ == '__main__':
  app.run(errors.exit_on_user_error(main, 'experiments/results.py'))
