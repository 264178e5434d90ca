"""The package's shape: layers that data flows through one way, and a suite that needs nothing
outside the repository."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_import_contract_holds():
  """import-linter's contract (.importlinter): no layer imports a higher one, entry points stand
  alone. Function-level imports count too."""
  out = subprocess.run(['lint-imports', '--config', os.path.join(ROOT, '.importlinter')],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
  assert 'Contracts: 2 kept, 0 broken.' in out.stdout


def test_every_module_is_in_a_layer():
  """Each package under posemachines/ is named by the contract (import-linter's exhaustive mode
  also checks this); a new folder has to be placed in a layer."""
  contract = open(os.path.join(ROOT, '.importlinter')).read()
  layers = re.search(r'layers =\n((?:    .*\n)+)', contract).group(1)
  named = {n.strip() for line in layers.splitlines() for n in line.split('|')}
  here = {n[:-3] if n.endswith('.py') else n for n in os.listdir(os.path.join(ROOT, 'posemachines'))
          if not n.startswith(('_', '.')) and (n.endswith('.py') or os.path.isdir(
              os.path.join(ROOT, 'posemachines', n)))}
  assert here - named == set()


def test_nothing_reads_outside_the_repository():
  pattern = re.compile(r"""(\.\./shared|["'`]/[a-z]+/shared/)""")
  offenders = []
  for top in ('posemachines', 'tests', 'experiments', 'launch', 'benchmarks'):
    for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
      for f in files:
        if f.endswith(('.py', '.sh', '.sbatch', '.json')):
          path = os.path.join(dirpath, f)
          if path != os.path.abspath(__file__) and pattern.search(open(path, errors='ignore').read()):
            offenders.append(os.path.relpath(path, ROOT))
  assert offenders == []
