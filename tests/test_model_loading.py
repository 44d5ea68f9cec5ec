"""Loading without random initialisation gives the same weights, bit for bit, as upstream's way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from booknlp_api.engine.components import build
from booknlp_api.models.manifest import read_manifest


def _tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, persistent or not."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


def _bits(tensor: torch.Tensor) -> bytes:
    return tensor.detach().contiguous().view(torch.uint8).numpy().tobytes()


def _shape(built: Any) -> tuple[Any, ...]:
    model = built.model
    return (model.bert.config.to_dict(), [(n, p.requires_grad, p.dtype) for n, p in model.named_parameters()],
            [type(m).__name__.replace("Checkpoint", "") for m in model.modules()], model.training)


@pytest.mark.parametrize("component", ["entity", "quote", "coref"])
def test_loaded_weights_are_bit_identical_to_initialised_loading(tiny_models_dir: Path, component: str) -> None:
    folder = tiny_models_dir / "tiny"
    file_name = read_manifest(folder).components[component]
    upstream_way = build(component, folder, file_name, initialise=True)
    ours = build(component, folder, file_name)
    expected, got = _tensors(upstream_way.model), _tensors(ours.model)
    assert list(got) == list(expected)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        assert _bits(got[name]) == _bits(tensor), name
    assert _shape(ours) == _shape(upstream_way)
    assert len(ours.model.tokenizer) == len(upstream_way.model.tokenizer)


def test_loading_skips_the_initialisation(tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The speed-up is real: no nn.init call and no embedding-covariance sampling happen while loading."""
    from transformers import modeling_utils

    folder = tiny_models_dir / "tiny"
    file_name = read_manifest(folder).components["quote"]
    real_mean = modeling_utils.PreTrainedModel._init_added_embeddings_weights_with_mean
    real_normal = torch.nn.init.normal_

    def spy(initialise: bool) -> list[str]:
        calls: list[str] = []
        # set before each build: no_init_weights restores nn.init's import-time functions on exit
        monkeypatch.setattr(torch.nn.init, "normal_", lambda *a, **k: calls.append("normal_") or real_normal(*a, **k))
        monkeypatch.setattr(modeling_utils.PreTrainedModel, "_init_added_embeddings_weights_with_mean",
                            lambda *a, **k: calls.append("mean") or real_mean(*a, **k))
        build("quote", folder, file_name, initialise=initialise)
        return calls

    assert "normal_" in spy(initialise=True) and "mean" in spy(initialise=True)
    assert spy(initialise=False) == []
