"""One training loop for every method.

Per step: ``n_dis`` D steps then one G step (D's parameters frozen during it), an optional EMA of
G (the run's ``ema`` decay from step ``ema_start``, a plain copy before it, over parameters and
BatchNorm buffers; spectral norm's vectors by the copy's own power iteration), NaN/inf detection, a log row every ``log_every`` steps and a resume checkpoint every
``checkpoint_every`` steps. Resuming restores networks, optimisers, EMA, the log and the RNG
states (the method's streams included), so on CPU a resumed run ends with exactly the weights of an uninterrupted one.
The checkpoint also lists the kinds of machine that trained the run (pipeline/machine.py; two when
it resumed on another kind).

Files in the run folder: ``checkpoint.partial.pt`` while training (not a declared output, so
Snakemake does not delete it when a killed job is rerun), then ``checkpoint.pt`` and
``train_log.csv`` at the end; the partial file is removed once the final one is written. An
unreadable partial checkpoint (truncated by a full disk, say) is set aside as
``checkpoint.partial.pt.unreadable`` and training starts afresh, so an automatic retry succeeds.
"""
from __future__ import annotations

import copy
import csv
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.nn.utils import parametrize
from tqdm import tqdm

from pipeline import checkpoint, context, distributed, machine
from pipeline.distributed import World
from pipeline.errors import PipelineError, check_stop, say
from pipeline.io import atomic_path
from pipeline.methods import Method

PARTIAL = "checkpoint.partial.pt"
FINAL = "checkpoint.pt"
LOG = "train_log.csv"


def _set_requires_grad(method: Method, names: tuple[str, ...], flag: bool) -> None:
    for name in names:
        method.nets[name].requires_grad_(flag)


def _check_finite(logs: dict[str, float], loss: torch.Tensor, step: int, run: str, world: World) -> None:
    if not distributed.all_finite(loss.item(), world):
        bad = ", ".join(f"{k}={v}" for k, v in logs.items())
        raise PipelineError(
            f"{run}: non-finite loss at step {step} ({bad}); lower the learning rates or check the data"
        )


def update_ema(ema: torch.nn.Module, g: torch.nn.Module, decay: float) -> None:
    """Average G's parameters and BatchNorm buffers into its EMA copy (in training mode). Spectral
    norm's power-iteration vectors are not averaged (an average of unit vectors is not a unit vector,
    and sampling in eval mode divides by u^T W v): the copy runs its own power iteration on its
    averaged weights."""
    with torch.no_grad():
        for e, x in zip(ema.parameters(), g.parameters()):
            e.lerp_(x, 1 - decay)
        for (name, e), x in zip(ema.named_buffers(), g.buffers()):
            if not name.endswith(("._u", "._v")):
                e.lerp_(x, 1 - decay) if e.is_floating_point() else e.copy_(x)
        for module in ema.modules():
            if parametrize.is_parametrized(module, "weight"):
                module.weight  # noqa: B018  (in training mode: one power iteration on the averaged weight)


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


class Trainer:
    def __init__(self, method: Method, run_dir: Path, *, steps: int, batch_size: int, n_dis: int,
                 ema: float, ema_start: int, checkpoint_every: int, log_every: int, fingerprint: str, meta: dict,
                 world: World = World(), monitor: Callable | None = None, eval_every: int = 0,
                 precision: str = "auto"):
        self.m, self.dir, self.world = method, Path(run_dir), world
        self.monitor, self.eval_every = monitor, eval_every  # FD/KID during training (pipeline/monitor.py)
        self.plain = torch.nn.ModuleDict(dict(method.nets))  # the networks without DDP wrappers (state, EMA)
        self.steps, self.batch_size, self.n_dis = steps, batch_size, n_dis
        self.ema_decay, self.ema_start = ema, ema_start
        self.checkpoint_every, self.log_every = checkpoint_every, log_every
        self.fingerprint, self.meta = fingerprint, meta
        self.label = meta.get("run", method.name)  # what progress and errors name: the run (biggan), not its method (gan)
        self.opts = method.optimisers()
        self.ema = copy.deepcopy(method.nets["G"]).requires_grad_(False) if ema > 0 else None
        self.step, self.rows, self.elapsed = 0, [], 0.0
        self.machines = [machine.describe(method.device)]  # every kind of machine that trained it (resumes)
        self.autocast = context.autocast(precision, method.device)  # train.precision

    # --- checkpoints -------------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "method": self.m.name, "fingerprint": self.fingerprint, "step": self.step,
            "nets": self.plain.state_dict(),
            "opts": {k: o.state_dict() for k, o in self.opts.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": distributed.gather(  # every rank's stream
                {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                 "streams": self.m.streams.state()},
                self.world),
            "log": self.rows, "elapsed": self.elapsed, "machines": self.machines, **self.meta,
        }

    def try_resume(self) -> bool:
        path = self.dir / PARTIAL
        if not path.exists():
            return False
        try:
            state = checkpoint.load(path)
        except PipelineError as err:
            if self.world.main:
                aside = path.with_name(path.name + ".unreadable")
                path.replace(aside)
                say(f"train: {err.args[0].split(';')[0]}; set aside as {aside}, starting afresh")
            return False
        if state.get("fingerprint") != self.fingerprint:
            if self.world.main:
                say(f"train: {path} is from other settings; starting afresh")
            return False
        self.plain.load_state_dict(state["nets"])
        for k, o in self.opts.items():
            o.load_state_dict(state["opts"][k])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        rng = state["rng"][self.world.rank]
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.m.streams.load(rng["streams"])
        self.step, self.rows, self.elapsed = state["step"], state["log"], state["elapsed"]
        self.machines = list(dict.fromkeys(state.get("machines", [machine.UNRECORDED]) + self.machines))
        if self.world.main:
            say(f"train: resumed {self.label} from step {self.step} ({path})")
        return True

    # --- the loop ----------------------------------------------------------------------------
    def one_step(self) -> dict[str, float]:
        m, batch = self.m, self.batch_size // self.world.size
        logs: dict[str, float] = {}
        m.phase = "d"  # the D steps' draws come from their own streams (pipeline/streams.py)
        for _ in range(self.n_dis):
            with self.autocast:
                loss, logs_d = m.d_loss(m.draw(batch))
            _check_finite(logs_d, loss, self.step, self.label, self.world)
            self.opts["d"].zero_grad(set_to_none=True)
            loss.backward()
            self.opts["d"].step()
            logs.update(logs_d)
        _set_requires_grad(m, m.d_nets, False)
        m.phase = "g"
        with self.autocast, distributed.no_sync([m.nets[n] for n in m.d_nets]):  # D is frozen: nothing to reduce
            loss, logs_g = m.g_loss(m.draw(batch))
        _check_finite(logs_g, loss, self.step, self.label, self.world)
        self.opts["g"].zero_grad(set_to_none=True)
        loss.backward()
        self.opts["g"].step()
        _set_requires_grad(m, m.d_nets, True)
        distributed.sync_buffers(self.plain, self.world)
        if self.ema is not None:
            self.update_ema()
        logs.update(logs_g)
        return logs

    def update_ema(self) -> None:
        update_ema(self.ema, self.plain["G"], self.ema_decay if self.step >= self.ema_start else 0.0)

    def fit(self) -> None:
        self.try_resume()
        resumed = distributed.gather(self.step, self.world)
        if len(set(resumed)) > 1:
            raise PipelineError(f"train: the ranks resumed from different steps {resumed}; delete {self.dir / PARTIAL}")
        distributed.wrap(self.m.nets, self.world)
        self.m.nets.train()
        interactive = sys.stderr.isatty() and self.world.main
        bar = tqdm(total=self.steps, initial=self.step, desc=f"train {self.label}", disable=not interactive)
        t0 = time.perf_counter() - self.elapsed
        try:
            while self.step < self.steps:
                check_stop()
                logs = self.one_step()
                self.step += 1
                self.elapsed = time.perf_counter() - t0
                bar.update(1)
                # every rank logs at the scored steps (the ranks' all_reduce of the losses must match); rank 0 scores
                scored = self.eval_every > 0 and (self.step % self.eval_every == 0 or self.step == self.steps)
                if self.step % self.log_every == 0 or self.step == self.steps or scored:
                    logs = distributed.mean(logs, self.world)
                    row = {"step": self.step, **{k: round(v, 6) for k, v in logs.items()},
                           "seconds": round(self.elapsed, 2)}
                    if scored and self.monitor is not None:
                        g = self.ema if self.ema is not None else self.plain["G"]
                        logs = {**logs, **self.monitor(self.m, self.plain, g)}
                        row.update({k: logs[k] for k in ("fd", "kid")})
                    self.rows.append(row)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
                    if not interactive and self.world.main:
                        vals = " ".join(f"{k}={v:.4f}" for k, v in logs.items())
                        say(f"train {self.label}: step {self.step}/{self.steps} {vals} "
                            f"({self.step * self.batch_size / self.elapsed:.0f} img/s)")
                if self.step % self.checkpoint_every == 0 and self.step < self.steps:
                    self.save(PARTIAL)
        except PipelineError:
            if self.world.main:
                (self.dir / PARTIAL).unlink(missing_ok=True)  # resuming would replay the same divergence
            raise
        finally:
            bar.close()
        self.save(FINAL)
        if self.world.main:
            _write_log(self.dir / LOG, self.rows)
            (self.dir / PARTIAL).unlink(missing_ok=True)

    def save(self, name: str) -> None:
        """Write a checkpoint from rank 0 (every rank takes part: the state holds every rank's stream)."""
        state = self.state()
        if self.world.main:
            checkpoint.save(self.dir / name, state)
