"""One process or many: the `accelerate` plumbing the VQ, evaluator and LLM trainers share.

A trainer runs unchanged as a plain process (one CPU or GPU) and under `accelerate launch` / `torchrun`
(DDP on many GPUs, DeepSpeed ZeRO for the 2B model; docs/training.md). Every process builds the same model
from the same seed, then draws its own batches from a rank-offset seed, so no two processes train on the
same data; DDP averages the gradients. Only the main process writes logs, checkpoints and exports.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, gather_object


def make_accelerator(cpu: bool = False, mixed_precision: str | None = None,
                     gradient_accumulation_steps: int = 1) -> Accelerator:
    """The Accelerator of this run. `mixed_precision` None takes the launch config's (default "no"); "bf16" is
    autocast over fp32 weights, so the optimizer keeps fp32 master weights. Without CUDA the processes are CPU
    processes (gloo), also when torchrun or accelerate's multi-process launcher started them."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # accelerate keeps its state per Python process; a single-process run (tests, notebooks, several
        # trainers in a row) must not inherit the previous run's device or precision.
        AcceleratorState._reset_state(reset_partial_state=True)
    kwargs = {}
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and not torch.cuda.is_available():
        # accelerate turns DeepSpeed off for cpu=True (it would silently run DDP): keep cpu False and give the
        # process group gloo, which DeepSpeed's CPU accelerator (DS_ACCELERATOR=cpu) uses without oneCCL
        from accelerate.utils import InitProcessGroupKwargs

        cpu, kwargs = False, {"kwargs_handlers": [InitProcessGroupKwargs(backend="gloo")]}
    else:
        cpu = cpu or not torch.cuda.is_available()
    return Accelerator(cpu=cpu, mixed_precision=mixed_precision,
                       gradient_accumulation_steps=gradient_accumulation_steps, **kwargs)


def leave_process_group() -> None:
    """The last act of a training command run by `accelerate launch` or torchrun: every process waits until the
    main process has evaluated and written its files, then leaves the process group. A process that exits while
    the others still hold their gloo connections aborts ("terminate called without an active exception") and
    the launcher reports the whole run failed. A no-op in a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def process_seed(seed: int, accelerator: Accelerator) -> int:
    """This process's data seed. Rank 0 keeps `seed`, so a single process draws what it always drew."""
    return seed + accelerator.process_index


def reseed_process(seed: int, accelerator: Accelerator) -> None:
    """Call after building the model from the shared seed: from here on each process samples its own stream."""
    if accelerator.process_index:
        torch.manual_seed(process_seed(seed, accelerator))


def any_process(accelerator: Accelerator, flag: bool) -> bool:
    """True on every process when `flag` is true on one: a clock read by each process still stops them all
    at the same step (a process that stopped alone would leave the others waiting in DDP forever)."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.gather(torch.tensor([int(flag)], device=accelerator.device)).any())


def random_state(rng: random.Random | np.random.Generator, device: torch.device) -> dict:
    """The data generator's and torch's random state of this process."""
    state = {"data": rng.getstate() if isinstance(rng, random.Random) else rng.bit_generator.state,
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(rng: random.Random | np.random.Generator, state: dict, device: torch.device) -> None:
    if isinstance(rng, random.Random):
        rng.setstate(state["data"])
    else:
        rng.bit_generator.state = state["data"]
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_random_states(accelerator: Accelerator, rng: random.Random | np.random.Generator) -> list[dict]:
    """Every process's random state, in rank order (a collective: all processes must call it), so that a
    resumed multi-process run draws exactly what the uninterrupted one would have."""
    state = random_state(rng, accelerator.device)
    return gather_object([state]) if accelerator.num_processes > 1 else [state]


def restore_random_state(accelerator: Accelerator, rng: random.Random | np.random.Generator,
                         states: list[dict]) -> bool:
    """Restore this process's entry of `gather_random_states`; False when the checkpoint came from another
    number of processes (the process then keeps its fresh rank-offset stream)."""
    if len(states) != accelerator.num_processes:
        return False
    set_random_state(rng, states[accelerator.process_index], accelerator.device)
    return True


def is_deepspeed(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.DEEPSPEED


def zero_stage(accelerator: Accelerator) -> int:
    return accelerator.state.deepspeed_plugin.zero_stage if is_deepspeed(accelerator) else 0


def configure_deepspeed(accelerator: Accelerator, micro_batch_size: int, grad_clip: float) -> None:
    """DeepSpeed reads the batch size and clipping from its JSON, where "auto" means "from the DataLoader";
    these trainers draw their own batches, so the trainer config fills them in (call before `prepare`)."""
    if is_deepspeed(accelerator):
        config = accelerator.state.deepspeed_plugin.deepspeed_config
        config["train_micro_batch_size_per_gpu"] = micro_batch_size
        config["gradient_clipping"] = grad_clip


def replica_checksums(accelerator: Accelerator, model: torch.nn.Module) -> list[float]:
    """One checksum of the weights per process (a collective). Raises when the processes hold different
    weights, e.g. a step whose forward bypassed DDP's gradient averaging. Under DeepSpeed each process holds
    a shard (ZeRO-3), so nothing is compared there."""
    if accelerator.num_processes == 1 or is_deepspeed(accelerator):
        return []
    sums = torch.stack([p.detach().double().sum() for p in accelerator.unwrap_model(model).parameters()])
    everyone = accelerator.gather(sums[None])
    if not torch.equal(everyone, everyone[:1].expand_as(everyone)):
        raise RuntimeError("the training processes hold different weights: "
                           f"checksums {everyone.sum(1).tolist()} (one per process)")
    return everyone.sum(1).tolist()
