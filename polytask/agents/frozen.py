"""Frozen policies (Policy Decorator's base policy, Yuan et al. 2024): freezing an agent's networks
and fingerprinting their weights, so that a run can prove they never changed."""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn


def policy_modules(agent: Any) -> dict[str, nn.Module]:
    """The networks of an agent object, by name: its ``nn.Module`` attributes (e.g. BC's ``encoder``
    and ``actor``) and the modules inside its dict, list or tuple attributes (``"nets.0"``)."""
    if isinstance(agent, nn.Module):
        return {"module": agent}
    found = {}
    for name, value in sorted(vars(agent).items()):
        if isinstance(value, nn.Module):
            found[name] = value
        elif isinstance(value, dict):
            found.update({f"{name}.{k}": v for k, v in value.items() if isinstance(v, nn.Module)})
        elif isinstance(value, (list, tuple)):
            found.update({f"{name}.{i}": v for i, v in enumerate(value) if isinstance(v, nn.Module)})
    return found


def freeze(agent: Any) -> Any:
    """Put every network of ``agent`` in eval mode with ``requires_grad=False``; returns ``agent``."""
    if hasattr(agent, "train") and not isinstance(agent, nn.Module):
        agent.train(False)
    for module in policy_modules(agent).values():
        module.train(False)
        module.requires_grad_(False)
    return agent


def fingerprint(agent: Any) -> str:
    """SHA-256 (hex) over every parameter and buffer of the agent's networks (names, dtypes, shapes
    and values, on CPU): equal fingerprints mean equal weights."""
    digest = hashlib.sha256()
    for name, module in policy_modules(agent).items():
        for key, value in module.state_dict().items():
            if not isinstance(value, torch.Tensor):
                continue
            t = value.detach().cpu().contiguous()
            digest.update(f"{name}.{key}:{t.dtype}:{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
