"""Zoo checkpoints carry a SHA-256 of their content, checked on every read: a flipped bit in a
weight (mantissa or exponent) is never used; the file is quarantined loudly and retrained."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

import rmqm.training.checkpoints as checkpoints

SMALL = dict(n_train=200, epochs=1, progress=False)


def _flip_weight_bit(path: Path, model: checkpoints.TrainedModel, bit: int) -> None:
    """Flip ``bit`` of one float32 weight of ``model`` inside its checkpoint file, in place
    (same size; torch.load does not check the zip's CRC-32)."""
    raw = bytearray(path.read_bytes())
    weights = next(iter(model.encoder.state_dict().values())).detach().reshape(-1).numpy()
    for value in weights:
        pattern = np.float32(value).tobytes()
        if bytes(raw).count(pattern) == 1:
            at = bytes(raw).index(pattern)
            word = int.from_bytes(raw[at:at + 4], "little") ^ (1 << bit)
            raw[at:at + 4] = word.to_bytes(4, "little")
            path.write_bytes(bytes(raw))
            return
    raise AssertionError("no weight with a unique byte pattern")


@pytest.mark.parametrize("bit, part", [(0, "mantissa"), (30, "exponent")])
def test_a_flipped_weight_bit_is_quarantined_and_retrained(tmp_path: Path, bit: int, part: str) -> None:
    model = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    size = model.path.stat().st_size
    _flip_weight_bit(model.path, model, bit)
    assert model.path.stat().st_size == size
    # read by name, as the notebooks do: refused, moved aside, never used
    with pytest.warns(checkpoints.CheckpointWarning, match="damaged zoo checkpoint"):
        with pytest.raises(checkpoints.CorruptCheckpointError, match="SHA-256 .* is not the one recorded"):
            checkpoints.load_model(model.name, tmp_path)
    assert len(list((tmp_path / "quarantine").iterdir())) == 1
    # the zoo retrains it: the same weights as before the flip
    again = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.encoder(x), model.encoder(x), rtol=0, atol=0)
    # load_or_train quarantines and retrains in one go
    _flip_weight_bit(again.path, again, bit)
    with pytest.warns(checkpoints.CheckpointWarning, match="retraining it"):
        third = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    torch.testing.assert_close(third.encoder(x), model.encoder(x), rtol=0, atol=0)
    assert len(list((tmp_path / "quarantine").iterdir())) == 2


def test_a_checkpoint_without_a_digest_is_refused(tmp_path: Path) -> None:
    model = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
    payload = torch.load(model.path, weights_only=True)
    del payload["content_sha256"]
    torch.save(payload, model.path)
    with pytest.raises(checkpoints.CorruptCheckpointError, match=r"recorded when it was written \(none\)"):
        checkpoints.load_model(model.path)


def test_checkpoints_get_the_permissions_of_any_other_file(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        model = checkpoints.default_encoder("digits", cache_dir=tmp_path, **SMALL)
        other = tmp_path / "other.json"
        other.write_text("{}")
        assert stat.S_IMODE(model.path.stat().st_mode) == stat.S_IMODE(other.stat().st_mode) == 0o644
    finally:
        os.umask(mask)
