"""prepare -> verify -> pipeline on phantoms; interruption, bad files, augmentation."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jcxr.data import images, nih, phantom, shards
from jcxr.data.augment import Augmentation, augment, key_for, warp
from jcxr.data.pipeline import Loader
from jcxr.data.table import DataError

RESOLUTIONS = [32, 48, 97]


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantoms")
    phantom.generate(root, 120, seed=1, workers=1)
    return root


@pytest.fixture(scope="module")
def prepared(phantoms, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    table = nih.read_metadata(phantoms)
    shards.prepare(
        table, phantoms, out, RESOLUTIONS, workers=2, records_per_shard=16, progress=False
    )
    return table, out


def test_round_trip_pixels_equal_the_resized_images(phantoms, prepared):
    table, out = prepared
    assert shards.verify(out) == []
    manifest = shards.read_manifest(out)
    assert manifest["images"] == 120 and manifest["resize"] == "bilinear"
    assert manifest["source_csv_sha256"] == table.csv_sha256 and len(manifest["shards"]["32"]) == 8
    index = np.load(out / "res97" / "index.npz")
    assert index["image_id"].tolist() == table.image_ids.tolist()
    labels = index["labels"][:, table.label_names.index("Mass")]
    loader = Loader(out, 97, np.arange(120), labels, batch_size=7, train=False)
    for batch in loader:
        for record, pixels, label in zip(
            batch["record"], batch["pixels"], batch["label"], strict=True
        ):
            if record < 0:
                continue
            expected = shards.resize(
                images.load_grey(phantoms / table.paths[record]), 97, "bilinear"
            )
            np.testing.assert_array_equal(pixels, expected)
            assert label == labels[record]


def test_compressed_shards_read_back_the_same_pixels(phantoms, prepared, tmp_path):
    from array_record.python.array_record_module import ArrayRecordReader

    table, reference = prepared
    out = tmp_path / "zstd"
    shards.prepare(
        table, phantoms, out, [48], records_per_shard=16, compression="zstd:3", progress=False
    )
    manifest = shards.read_manifest(out)
    assert manifest["compression"] == "zstd:3" and shards.verify(out) == []
    assert shards.read_manifest(reference)["compression"] == "uncompressed"
    options = ArrayRecordReader(shards.shard_paths(out, 48)[0]).writer_options_string()
    assert "zstd:3" in options
    labels = np.zeros(120, np.float32)
    batches = [
        list(Loader(d, 48, np.arange(120), labels, batch_size=40, train=False))
        for d in (out, reference)
    ]
    for a, b in zip(*batches, strict=True):
        np.testing.assert_array_equal(a["pixels"], b["pixels"])
    with pytest.raises(DataError, match="compression must be one of"):
        shards.prepare(table, phantoms, tmp_path / "x", [48], compression="lz4", progress=False)


def test_verify_catches_a_damaged_shard(prepared, tmp_path):
    import shutil

    _, out = prepared
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = copy / shards.read_manifest(copy)["shards"]["48"][2]["file"]
    shard.write_bytes(shard.read_bytes()[:-10] + b"0123456789")
    assert any("checksum" in p for p in shards.verify(copy))


def test_killed_prepare_resumes_to_the_same_shards(phantoms, prepared, tmp_path):
    _, reference = prepared
    target = tmp_path / "interrupted"
    script = textwrap.dedent(f"""
        import os, signal
        from jcxr.data import nih, shards
        original, calls = os.replace, [0]
        def dying(src, dst):  # the real writer has written the whole shard: die before rename
            if str(dst).endswith(".array_record"):
                calls[0] += 1
                if calls[0] == 8:  # shard 2, second resolution
                    os.kill(os.getpid(), signal.SIGKILL)
            original(src, dst)
        os.replace = dying
        table = nih.read_metadata({str(phantoms)!r})
        shards.prepare(table, {str(phantoms)!r}, {str(target)!r}, {RESOLUTIONS}, workers=1,
                       records_per_shard=16, progress=False)
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert killed.returncode == -9
    assert not (target / "manifest.json").exists()
    (partial,) = target.glob("res*/.*.partial-*")  # the writer's file, under its temporary name
    assert (
        partial.stat().st_size > 0
        and not partial.with_name(partial.name[1:].split(".partial")[0]).exists()
    )
    with pytest.raises(DataError, match=r"no manifest\.json"):
        shards.verify(target)  # nothing there passes for finished shards
    table = nih.read_metadata(phantoms)
    shards.prepare(
        table, phantoms, target, RESOLUTIONS, workers=1, records_per_shard=16, progress=False
    )
    assert not list(target.glob("res*/.*.partial-*"))  # ...and gone after the rerun
    assert shards.read_manifest(target)["shards"] == shards.read_manifest(reference)["shards"]
    assert shards.verify(target) == []


def test_corrupt_and_missing_images(phantoms, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(phantoms, root)
    table = nih.read_metadata(root)
    bad = root / table.paths[5]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated PNG
    with pytest.raises(DataError, match=rf"{table.paths[5]}: cannot decode image"):
        shards.prepare(table, root, tmp_path / "a", [32], workers=1, progress=False)
    assert not (tmp_path / "a" / "manifest.json").exists()
    (root / table.paths[9]).unlink()
    manifest = shards.prepare(
        table, root, tmp_path / "b", [32], workers=1, skip_bad=True, progress=False
    )
    assert manifest["images"] == 118
    assert [s["image"] for s in manifest["skipped"]] == [table.image_ids[5], table.image_ids[9]]
    assert "not found" in manifest["skipped"][1]["reason"]
    assert shards.verify(tmp_path / "b") == []


def test_shards_remember_their_inputs(phantoms, prepared, tmp_path):
    """Preparing into a folder made from other inputs stops, naming what changed; --rebuild
    remakes it; the CLI says the same without a traceback."""
    import shutil

    table, reference = prepared
    out = tmp_path / "shards"
    shutil.copytree(reference, out)
    kw = dict(workers=1, records_per_shard=16, progress=False)
    before = shards.read_manifest(out)["shards"]
    shards.prepare(table, phantoms, out, RESOLUTIONS, **kw)  # the same inputs: nothing to do
    assert shards.read_manifest(out)["shards"] == before
    with pytest.raises(DataError, match=r"resize: 'bilinear' -> 'lanczos'.*--rebuild"):
        shards.prepare(table, phantoms, out, RESOLUTIONS, method="lanczos", **kw)
    other_root = tmp_path / "copy"
    shutil.copytree(phantoms, other_root)
    with pytest.raises(DataError, match=rf"root: '{phantoms}' -> '{other_root}'"):
        shards.prepare(table, other_root, out, RESOLUTIONS, **kw)
    assert shards.read_manifest(out)["shards"] == before  # refused: nothing touched
    logged = []
    manifest = shards.prepare(
        table, phantoms, out, [32], method="lanczos", rebuild=True, log=logged.append, **kw
    )
    assert manifest["resize"] == "lanczos" and manifest["resolutions"] == [32]
    assert not (out / "res48").exists() and "removing them to rebuild" in logged[0]
    assert manifest["shards"]["32"] != before["32"]  # really remade, with the new resize
    assert shards.verify(out) == []
    cli = [sys.executable, "-m", "jcxr.data", "prepare", "--source", "nih", "--root",
           str(phantoms), "--out", str(out), "--resolutions", "32", "--workers", "1"]  # fmt: skip
    refused = subprocess.run(cli, capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "resize: 'lanczos' -> 'bilinear'" in refused.stderr


def test_a_fixed_image_is_added_when_prepare_runs_again(phantoms, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(phantoms, root)
    table = nih.read_metadata(root)
    good = (root / table.paths[20]).read_bytes()
    (root / table.paths[20]).write_bytes(good[:200])
    kw = dict(workers=1, records_per_shard=16, progress=False)
    first = shards.prepare(table, root, tmp_path / "out", [32], skip_bad=True, **kw)
    assert first["images"] == 119 and first["skipped"][0]["image"] == table.image_ids[20]
    (root / table.paths[20]).write_bytes(good)  # fixed
    logged = []
    again = shards.prepare(table, root, tmp_path / "out", [32], skip_bad=True, log=logged.append,
                           **kw)  # fmt: skip
    assert again["images"] == 120 and again["skipped"] == []
    assert any("decodes now" in line for line in logged)
    assert shards.verify(tmp_path / "out") == []
    assert table.image_ids[20] in shards.read_index(tmp_path / "out", 32).image_ids


def test_bad_manifests_and_empty_inputs_are_named(prepared, tmp_path):
    import shutil

    table, reference = prepared
    out = tmp_path / "cut"
    shutil.copytree(reference, out)
    text = (out / "manifest.json").read_text()
    (out / "manifest.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"manifest.json: the shard manifest is not valid JSON"):
        shards.verify(out)
    with pytest.raises(DataError, match="lists no images"):
        shards.prepare(table.subset(np.arange(0)), reference, tmp_path / "e", [32], progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is not a folder"):
        shards.prepare(table, reference, tmp_path / "file", [32], progress=False)


def test_grey_conversion_and_squaring(tmp_path):
    from PIL import Image

    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    grey = images.load_grey(tmp_path / "a.png", "crop")
    assert grey.shape == (40, 40) and grey.dtype == np.uint8
    assert grey[0, 0] == round(200 * 299 / 1000)  # ITU-R 601 luma, as PIL's "L"
    padded = images.load_grey(tmp_path / "a.png", "pad")
    assert padded.shape == (60, 60) and padded[0, 0] == 0 and padded[30, 30] == grey[0, 0]


def test_missing_shards_say_how_to_prepare(tmp_path):
    with pytest.raises(DataError, match="prepare the shards first"):
        Loader(tmp_path, 32, np.arange(3), np.zeros(3), 2, train=False)


# --------------------------------------------------------------------------- pipeline


def mass_labels(out):
    index = np.load(out / "res32" / "index.npz")
    return index["labels"][:, list(shards.read_manifest(out)["label_names"]).index("Mass")]


def test_every_evaluation_record_appears_exactly_once(prepared):
    _, out = prepared
    records = np.arange(3, 103)
    loader = Loader(out, 32, records, mass_labels(out), batch_size=16, train=False)
    batches = list(loader)
    assert len(batches) == loader.batches_per_epoch == 7
    assert all(b["pixels"].shape == (16, 32, 32) for b in batches)
    seen = np.concatenate([b["record"][b["mask"]] for b in batches])
    assert np.array_equal(np.sort(seen), records)
    assert np.concatenate([b["mask"] for b in batches]).sum() == 100


def test_training_order_is_seeded_per_epoch_and_drops_the_remainder(prepared):
    _, out = prepared
    loader = Loader(out, 32, np.arange(100), mass_labels(out), batch_size=16, train=True, seed=4)
    epoch0 = [b["record"] for b in loader]
    epoch1 = [b["record"] for b in loader]
    assert len(epoch0) == 6 and all(b.shape == (16,) for b in epoch0)
    assert not np.array_equal(np.concatenate(epoch0), np.concatenate(epoch1))
    again = Loader(out, 32, np.arange(100), mass_labels(out), batch_size=16, train=True, seed=4)
    assert all(np.array_equal(a["record"], b) for a, b in zip(again, epoch0, strict=True))


def test_restored_loader_continues_with_the_identical_next_batch(prepared):
    _, out = prepared
    make = lambda: Loader(out, 48, np.arange(120), mass_labels(out), 8, train=True, seed=9)  # noqa: E731
    reference = make()
    list(reference)  # epoch 0
    full = list(reference)  # epoch 1
    interrupted = make()
    list(interrupted)
    iterator = iter(interrupted)
    for _ in range(5):
        next(iterator)
    state = json.loads(json.dumps(interrupted.get_state()))  # survives a round trip to disk
    resumed = make()
    resumed.set_state(state)
    rest = list(resumed)
    assert state == {"epoch": 1, "batch": 5} and len(rest) == len(full) - 5
    for a, b in zip(rest, full[5:], strict=True):
        np.testing.assert_array_equal(a["pixels"], b["pixels"])
        np.testing.assert_array_equal(a["record"], b["record"])


def test_processes_see_disjoint_data(prepared):
    _, out = prepared
    labels = mass_labels(out)
    train = [
        Loader(
            out, 32, np.arange(120), labels, 8, train=True, seed=1, process_index=p, process_count=2
        ).epoch_order(0)
        for p in range(2)
    ]
    assert len(train[0]) == len(train[1]) and not set(train[0]) & set(train[1])
    evals = [
        Loader(
            out, 32, np.arange(101), labels, 8, train=False, process_index=p, process_count=2
        ).epoch_order(0)
        for p in range(2)
    ]
    both = np.concatenate(evals)
    assert np.array_equal(np.sort(both[both >= 0]), np.arange(101))


# --------------------------------------------------------------------------- augmentation


def test_warp_rotates_and_flips_exactly():
    image = jnp.asarray(np.random.default_rng(0).random((9, 9)), jnp.float32)
    np.testing.assert_allclose(warp(image, 0.0), image, atol=1e-6)
    np.testing.assert_allclose(warp(image, 90.0), np.rot90(np.asarray(image)), atol=1e-5)
    np.testing.assert_allclose(warp(image, 0.0, flip=True), np.asarray(image)[:, ::-1], atol=1e-6)
    shifted = np.asarray(warp(image, 0.0, shift=(2.0, 0.0)))
    np.testing.assert_allclose(shifted[2:], np.asarray(image)[:-2], atol=1e-6)
    assert np.all(shifted[:2] == 0)  # black padding


def test_augmentation_is_deterministic_and_keeps_shapes():
    pixels = jnp.asarray(np.random.default_rng(1).integers(0, 256, (4, 32, 32)), jnp.uint8)
    config = Augmentation()
    run = jax.jit(lambda key, x: augment(key, x, config))
    a = run(key_for(3, 10), pixels)
    assert a.shape == (4, 32, 32) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, run(key_for(3, 10), pixels))
    assert not np.array_equal(a, run(key_for(3, 11), pixels))
    assert not np.array_equal(a, run(key_for(3, 10, view=1), pixels))
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    none = Augmentation(0, 0, 0, False, 0, 0)
    np.testing.assert_allclose(augment(key_for(0, 0), pixels, none), pixels / 255.0, atol=1e-7)


def test_normalise_is_imagenet_on_three_channels():
    from jcxr.models import normalise

    x = normalise(jnp.full((1, 2, 2), 0.5))
    assert x.shape == (1, 2, 2, 3)
    np.testing.assert_allclose(
        x[0, 0, 0],
        (0.5 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]),
        rtol=1e-6,
    )


def test_tfds_export_opens_without_jcxr_and_holds_the_same_images(prepared, tmp_path):
    table, out = prepared
    command = [sys.executable, "-m", "jcxr.data", "tfds", str(out), "--out", str(tmp_path),
               "--resolutions", "32,48"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # a fresh process that never imports jcxr (nor TensorFlow) opens it by directory
    reader = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow_datasets as tfds
        source = tfds.builder_from_directory({str(tmp_path / "jcxr_shards" / "res48" / "1.0.0")!r})
        images = source.as_data_source()["train"]
        rows = [images[i] for i in range(len(images))]
        order = np.argsort([r["record"] for r in rows])
        np.savez({str(tmp_path / "read.npz")!r},
                 image=np.stack([rows[i]["image"] for i in order]),
                 labels=np.stack([rows[i]["labels"] for i in order]),
                 image_id=np.array([rows[i]["image_id"] for i in order]),
                 record=np.array([rows[i]["record"] for i in order]))
        assert "jcxr" not in sys.modules and "tensorflow" not in sys.modules
    """)
    done = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    read = np.load(tmp_path / "read.npz")
    assert read["record"].tolist() == list(range(120))
    assert [x.decode() if isinstance(x, bytes) else x for x in read["image_id"].tolist()] == (
        table.image_ids.tolist()
    )
    np.testing.assert_array_equal(read["labels"], table.labels)
    mass = np.zeros(120, np.float32)
    (batch,) = Loader(out, 48, np.arange(120), mass, batch_size=120, train=False)
    np.testing.assert_array_equal(read["image"], batch["pixels"])
    with pytest.raises(DataError, match="no shards at 64 px"):
        from jcxr.data import tfds_builder

        tfds_builder.builder(out, 64, tmp_path)


def test_workers_die_with_a_killed_parent(tmp_path):
    pid_file = tmp_path / "worker.pid"
    script = textwrap.dedent(f"""
        import os, signal, time
        from pathlib import Path
        from jcxr.data.workers import pool
        from tests.helpers import sleep_in_worker
        with pool(1) as workers:
            workers.submit(sleep_in_worker, {str(pid_file)!r})
            while not Path({str(pid_file)!r}).exists():
                time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    repo = Path(__file__).parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]),
    }
    parent = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=120
    )
    assert parent.returncode == -9, parent.stderr[-2000:]
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.2)
    assert not _alive(worker), "the worker outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "zombie" in status.read_text())
