"""posemachines: Convolutional Pose Machines and Recurrent Human Pose Estimation in JAX/Flax."""

import os as _os

__version__ = '0.1.0'

# XLA's default CPU path for convolution weight gradients (YNNPACK convolution fusions) is several
# times slower than the classic path; `python -m posemachines.benchmark --compare_cpu_flags`
# measures the difference. The flag only affects the CPU backend and must be set before JAX
# starts, so it is added here unless the user's XLA_FLAGS already choose a YNN fusion setting,
# or POSEMACHINES_CPU_FLAGS=0.
CPU_XLA_FLAG = '--xla_cpu_experimental_ynn_fusion_type='
CPU_XLA_DEFAULT = '-individual_convolution'


def _apply_cpu_flags():
  flags = _os.environ.get('XLA_FLAGS', '')
  if _os.environ.get('POSEMACHINES_CPU_FLAGS', '1') == '0' or CPU_XLA_FLAG in flags:
    return
  _os.environ['XLA_FLAGS'] = f'{flags} {CPU_XLA_FLAG}{CPU_XLA_DEFAULT}'.strip()


_apply_cpu_flags()
