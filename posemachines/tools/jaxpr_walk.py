"""Walking jaxprs: opening sub-jaxprs (jit, custom_jvp/vjp, remat, cond, scan, while) and
reading their literals and trip counts; shared by the FLOP count and the receptive fields."""
from __future__ import annotations
from typing import Any, Sequence
from jax.extend import core as jcore

# ---------------------------------------------------------------------------------------------
# Jaxpr helpers shared by the FLOP count and the receptive fields.


def open_jaxpr(jaxpr) -> tuple[Any, Sequence]:
  """(open jaxpr, consts) of a Jaxpr or ClosedJaxpr."""
  if isinstance(jaxpr, jcore.ClosedJaxpr):
    return jaxpr.jaxpr, jaxpr.consts
  return jaxpr, ()


def call_jaxpr(eqn):
  """The jaxpr a call-like equation (jit, custom_jvp/vjp, remat, ...) runs on its operands."""
  candidates = [eqn.params.get(k) for k in ('jaxpr', 'call_jaxpr', 'fun_jaxpr')]
  candidates += list(eqn.params.values())
  for p in candidates:
    if isinstance(p, (jcore.Jaxpr, jcore.ClosedJaxpr)):
      if len(open_jaxpr(p)[0].invars) == len(eqn.invars):
        return p
  return None


def literal(v):
  return v.val if isinstance(v, jcore.Literal) else None


def while_trips(eqn) -> int | None:
  """Trip count of a counted while loop (``i < n`` with i += 1 and literal bounds), else None."""
  cond, _ = open_jaxpr(eqn.params['cond_jaxpr'])
  body, _ = open_jaxpr(eqn.params['body_jaxpr'])
  nc, nb = eqn.params['cond_nconsts'], eqn.params['body_nconsts']
  if len(cond.eqns) != 1 or cond.eqns[0].primitive.name != 'lt':
    return None
  init = eqn.invars[nc + nb:]

  def value(v):
    if isinstance(v, jcore.Literal):
      return v.val
    if v in cond.invars[nc:]:
      return literal(init[cond.invars[nc:].index(v)])
    return None

  i, n = cond.eqns[0].invars
  lo, hi = value(i), value(n)
  if lo is None or hi is None or i not in cond.invars[nc:]:
    return None
  k = cond.invars[nc:].index(i)
  step = [e for e in body.eqns if body.outvars[k] in e.outvars]
  if (len(step) != 1 or step[0].primitive.name != 'add'
      or body.invars[nb + k] not in step[0].invars
      or 1 not in [literal(v) for v in step[0].invars]):
    return None
  return max(int(hi) - int(lo), 0)
