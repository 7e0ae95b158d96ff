"""jcxr.models against torchvision: key/shape manifests, parameter counts, golden logits."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jcxr import models
from jcxr.models import cpu_kernels
from jcxr.models.__main__ import summarise
from jcxr.models.port import main as port_main
from jcxr.models.weights import WeightsMismatchError, model_variables, read_state_dict
from tests.golden.random_weights import (
    BATCH,
    EVAL_ONLY_ARCHS,
    EVAL_ONLY_RESOLUTION,
    FIXTURES,
    GOLDEN_ARCHS,
    TRAIN_RESOLUTION,
    manifest,
    random_input,
    random_state_dict,
    resolutions,
    train_resolution,
)

ALL_ARCHS = models.list_archs(torchvision_only=True)


def nhwc(x):
    return jnp.asarray(x.transpose(0, 2, 3, 1))


@nnx.jit
def forward(model, x):
    return model(x)


def abstract_imagenet_model(arch):
    return nnx.eval_shape(lambda: models.create(arch, num_outputs=1000, head="imagenet"))


def test_every_torchvision_architecture_is_listed():
    expected = {f"resnet{d}" for d in (18, 34, 50, 101, 152)}
    expected |= {f"densenet{d}" for d in (121, 161, 169, 201)}
    expected |= {f"efficientnet_b{i}" for i in range(8)}
    # Cardona Cardenas et al. 2020's MobileNet (v1) is not in torchvision; v2 and v3 stand in
    expected |= {"mobilenet_v2", "mobilenet_v3_large", "inception_v3"}
    expected |= {"xception"}  # timm's legacy_xception: Keras' Xception weights
    assert set(ALL_ARCHS) == expected
    assert set(models.list_archs()) == expected | {"resnet_tiny"}  # jcxr's CPU demo model


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_keys_and_shapes_equal_the_torchvision_manifest(arch):
    model = abstract_imagenet_model(arch)
    ours = {
        key: tuple(
            np.empty(v.get_value().shape, np.uint8)
            .transpose(
                *(
                    (3, 2, 0, 1)
                    if leaf == "kernel" and v.get_value().ndim == 4
                    else (1, 0)
                    if leaf == "kernel"
                    else range(v.get_value().ndim)
                )
            )
            .shape
        )
        for key, (leaf, v) in model_variables(
            model, models.torch_head(arch), include_head=True
        ).items()
    }
    theirs = {
        k: tuple(shape)
        for k, shape, _ in manifest(arch)["tensors"]
        if not k.endswith("num_batches_tracked") and not k.startswith(ignored(arch))
    }
    assert ours == theirs


def ignored(arch):
    """Key prefixes jcxr does not build (InceptionV3's auxiliary classifier)."""
    return getattr(models._family(arch), "IGNORED", ())


@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_parameter_count_equals_torchvision(arch):
    info = summarise(arch, 64 if models.min_size(arch) <= 64 else 97)
    unbuilt = sum(int(np.prod(shape)) for key, shape, _ in manifest(arch)["tensors"]
                  if key.startswith(ignored(arch)) and "running" not in key
                  and not key.endswith("num_batches_tracked"))  # fmt: skip
    assert info["params"] == manifest(arch)["num_params"] - unbuilt
    assert info["output_shape"] == (1, 1000)


def test_inception_v3_skips_exactly_its_auxiliary_classifier():
    sd = random_state_dict("inception_v3")
    aux = [k for k in sd if k.startswith("AuxLogits.") and not k.endswith("batches_tracked")]
    assert len(aux) == 12 and manifest("inception_v3")["num_params"] == 27_161_264
    report = models.weights.load_into(
        models.create("inception_v3", num_outputs=1000), sd, "fc", include_head=True,
        ignore=("AuxLogits.",))  # fmt: skip
    assert report["skipped"] == sorted(aux)
    with pytest.raises(WeightsMismatchError, match=r"unexpected in the weights \(12\)"):
        models.weights.load_into(models.create("inception_v3", num_outputs=1000), sd, "fc",
                                 include_head=True)  # fmt: skip


def test_parameter_counts_quoted_in_the_issue():
    quoted = {"resnet34": 21_797_672, "densenet121": 7_978_856, "efficientnet_b0": 5_288_548}
    for arch, count in quoted.items():
        assert summarise(arch, 64)["params"] == count


@pytest.mark.parametrize("arch", GOLDEN_ARCHS)
def test_eval_logits_equal_torchvision_golden(arch):
    model = models.from_torchvision(arch, random_state_dict(arch))
    model.eval()
    golden = np.load(FIXTURES / f"{arch}.npz")
    for resolution in resolutions(arch):
        logits = np.asarray(forward(model, nhwc(random_input(resolution))))
        assert logits.shape == (2, 1000)
        np.testing.assert_allclose(logits, golden[f"eval_{resolution}"], rtol=0, atol=1e-4)


def test_every_torchvision_architecture_has_golden_logits():
    assert sorted(GOLDEN_ARCHS + EVAL_ONLY_ARCHS) == sorted(ALL_ARCHS)


@pytest.mark.parametrize("arch", EVAL_ONLY_ARCHS)
def test_eval_logits_of_every_other_architecture_equal_torchvision_golden(arch):
    model = models.from_torchvision(arch, random_state_dict(arch))
    model.eval()
    golden = np.load(FIXTURES / f"{arch}.npz")[f"eval_{EVAL_ONLY_RESOLUTION}"]
    logits = np.asarray(forward(model, nhwc(random_input(EVAL_ONLY_RESOLUTION))))
    assert np.abs(golden).max() > 1e-2  # a fixture of zeros would compare equal to anything small
    np.testing.assert_allclose(logits, golden, rtol=0, atol=1e-4)


@pytest.mark.parametrize("arch", GOLDEN_ARCHS)
def test_train_mode_outputs_and_running_statistics_equal_torchvision(arch):
    sd_rate = 0.0 if arch.startswith("efficientnet") else None
    model = models.from_torchvision(arch, random_state_dict(arch), stochastic_depth=sd_rate)
    model.train()
    model.set_attributes(
        deterministic=True, raise_if_not_found=False
    )  # dropout off, BN batch stats
    golden = np.load(FIXTURES / f"{arch}.npz")
    size = train_resolution(arch)
    logits = np.asarray(forward(model, nhwc(random_input(size))))
    np.testing.assert_allclose(logits, golden[f"train_{size}"], rtol=0, atol=1e-4)
    variables = model_variables(model, models.torch_head(arch), include_head=True)
    running = [k for k in golden.files if k.startswith("running/")]
    assert len(running) == sum(k.endswith(("running_mean", "running_var")) for k in variables)
    for name in running:
        key = name.removeprefix("running/")
        np.testing.assert_allclose(
            np.asarray(variables[key][1].get_value()),
            golden[name],
            rtol=1e-4,
            atol=1e-5,
            err_msg=key,
        )


@pytest.mark.parametrize("arch", ["resnet34", "densenet121", "efficientnet_b0"])
def test_ghost_batchnorm_on_torchvision_weights_is_torchs_batchnorm_per_group(arch):
    """Ported weights with BatchNorm groups (config.model.batchnorm_group): the golden batch
    twice, in groups of one golden batch, gives torch's train-mode logits twice, and running
    statistics updated once per group: after torch's one update r1 = k r0 + (1 - k) s, a second
    with the same s gives k r1 + (1 - k) s."""
    model = models.from_torchvision(arch, random_state_dict(arch), stochastic_depth=0.0
                                    if arch.startswith("efficientnet") else None)  # fmt: skip
    model.train()
    model.set_attributes(deterministic=True, group=BATCH, raise_if_not_found=False)
    golden = np.load(FIXTURES / f"{arch}.npz")
    before = model_variables(model, models.torch_head(arch), include_head=True)
    before = {k: np.asarray(v[1].get_value()) for k, v in before.items() if "running" in k}
    x = random_input(TRAIN_RESOLUTION)
    logits = np.asarray(forward(model, nhwc(np.concatenate([x, x]))))
    expected = golden[f"train_{TRAIN_RESOLUTION}"]
    np.testing.assert_allclose(logits, np.concatenate([expected, expected]), rtol=0, atol=1e-4)
    after = model_variables(model, models.torch_head(arch), include_head=True)
    for key, r0 in before.items():
        module = after[key][1]
        kept = 0.9  # torch momentum 0.1 in all three
        r1 = golden[f"running/{key}"]
        s = (r1 - kept * r0) / (1 - kept)
        np.testing.assert_allclose(np.asarray(module.get_value()), kept * r1 + (1 - kept) * s,
                                   rtol=1e-4, atol=1e-4, err_msg=key)  # fmt: skip


def test_legacy_densenet_keys_load():
    sd = random_state_dict("densenet121")
    legacy = {}
    for key, value in sd.items():
        for name in ("norm1", "norm2", "conv1", "conv2"):
            key = key.replace(f".{name}.", f".{name[:-1]}.{name[-1]}.")
        legacy[key] = value
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    a = models.from_torchvision("densenet121", sd)
    b = models.from_torchvision("densenet121", legacy)
    ka = model_variables(a, "classifier", include_head=True)
    kb = model_variables(b, "classifier", include_head=True)
    for key in ka:
        assert np.array_equal(ka[key][1].get_value(), kb[key][1].get_value())


def test_mismatched_weights_list_every_problem():
    sd = random_state_dict("resnet34")
    del sd["layer1.0.bn1.running_mean"]
    sd["layer9.0.conv1.weight"] = np.zeros((1,), np.float32)
    sd["layer2.0.conv1.weight"] = np.zeros((128, 64, 5, 5), np.float32)
    with pytest.raises(WeightsMismatchError) as info:
        models.from_torchvision("resnet34", sd)
    text = str(info.value)
    assert "missing from the weights (1)" in text and "layer1.0.bn1.running_mean" in text
    assert "unexpected in the weights (1)" in text and "layer9.0.conv1.weight" in text
    assert "layer2.0.conv1.weight: found (128, 64, 5, 5), expected (128, 64, 3, 3)" in text
    with pytest.raises(WeightsMismatchError, match=r"unexpected in the weights \(80\)"):
        models.from_torchvision("resnet18", random_state_dict("resnet34"))


@pytest.mark.parametrize("head", models.HEADS)
def test_pretrained_loads_backbone_and_keeps_a_fresh_head(head):
    sd = random_state_dict("resnet34")
    model = models.create("resnet34", num_outputs=3, head=head, pretrained=sd, rngs=nnx.Rngs(1))
    kernel = np.asarray(model.layer3[2].conv2.kernel.get_value())
    np.testing.assert_array_equal(kernel, sd["layer3.2.conv2.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(np.asarray(model.bn1.mean.get_value()), sd["bn1.running_mean"])
    model.eval()
    out = forward(model, jnp.zeros((2, 64, 64, 3)))
    assert out.shape == (2, 3) and out.dtype == jnp.float32


def test_heads_have_the_documented_structure():
    concat = models.create("resnet18", head="concat_pool", num_outputs=2)
    head_params = lambda m: sum(  # noqa: E731
        v.get_value().size for _, v in nnx.to_flat_state(nnx.state(m.head, nnx.Param))
    )
    # BN(1024) + dense(1024 -> 512) + BN(512) + dense(512 -> 2)
    assert head_params(concat) == 2 * 1024 + 1024 * 512 + 512 + 2 * 512 + 512 * 2 + 2
    mlp = models.create("resnet18", head="mlp", num_outputs=1)
    assert len(mlp.head.denses) == 3
    linear = models.create("resnet18", head="linear", num_outputs=1)
    assert head_params(linear) == 512 + 1


def test_weight_files_npz_safetensors_and_ported_directory(tmp_path):
    from safetensors.numpy import save_file

    sd = random_state_dict("efficientnet_b0")
    np.savez(tmp_path / "w.npz", **sd)
    save_file({k: v for k, v in sd.items()}, str(tmp_path / "w.safetensors"))
    assert (
        port_main(
            [
                "efficientnet_b0",
                "--weights",
                str(tmp_path / "w.npz"),
                "--out",
                str(tmp_path / "ported"),
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "ported" / "port.json").read_text())
    converted = [k for k in sd if not k.endswith("num_batches_tracked")]  # torch's counters
    assert record["arch"] == "efficientnet_b0" and record["tensors_converted"] == len(converted)
    assert len(record["source_sha256"]) == 64
    assert not list(tmp_path.glob(".ported.partial-*"))
    for source in ("w.npz", "w.safetensors", "ported"):
        loaded = read_state_dict(tmp_path / source)
        assert set(loaded) == {k for k in sd if not k.endswith("num_batches_tracked")}
        for key, value in loaded.items():
            np.testing.assert_array_equal(value, sd[key])


def test_port_refuses_bad_weights_and_reports_missing_torch(tmp_path, monkeypatch, capsys):
    sd = random_state_dict("resnet18")
    np.savez(tmp_path / "r18.npz", **sd)
    assert (
        port_main(
            ["resnet34", "--weights", str(tmp_path / "r18.npz"), "--out", str(tmp_path / "out")]
        )
        == 2
    )
    assert "missing from the weights" in capsys.readouterr().err  # resnet18 lacks layers
    assert not (tmp_path / "out").exists()
    assert (
        port_main(
            ["resnet18", "--weights", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "out")]
        )
        == 2
    )
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "w.pth").write_bytes(b"not really")
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a machine without torch
    assert (
        port_main(
            ["resnet18", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "out")]
        )
        == 2
    )
    assert "needs torch" in capsys.readouterr().err
    assert port_main(["resnet18", "--weights", "torchvision", "--out", str(tmp_path / "o")]) == 2
    assert "needs torch and torchvision" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "efficientnet_b0", "mobilenet_v2",
                                  "mobilenet_v3_large", "inception_v3", "xception"])  # fmt: skip
def test_any_size_from_the_smallest_to_odd_sizes(arch):
    model = models.create(arch, num_outputs=2)
    model.eval()
    smallest = models.min_size(arch)
    assert smallest == (75 if arch == "inception_v3" else 32)  # torchvision's min_size
    for size in (smallest, smallest + 13):
        assert forward(model, jnp.ones((1, size, size, 3))).shape == (1, 2)


@pytest.mark.parametrize("arch", ["mobilenet_v2", "mobilenet_v3_large", "inception_v3",
                                  "xception"])  # fmt: skip
def test_compiles_once_per_input_shape(arch):
    model = models.create(arch, num_outputs=1)
    model.eval()
    graph, state = nnx.split(model)
    traces = []

    @jax.jit
    def run(state, x):
        traces.append(x.shape)  # once per compilation
        return nnx.merge(graph, state)(x)

    rng = np.random.default_rng(0)
    for _ in range(3):
        run(state, jnp.asarray(rng.normal(size=(2, 97, 97, 3)), jnp.float32))
    run(state, jnp.zeros((2, 79, 79, 3)))
    assert traces == [(2, 97, 97, 3), (2, 79, 79, 3)]


def test_bfloat16_computes_in_bf16_with_float32_parameters_and_statistics():
    sd = random_state_dict("resnet34")
    f32 = models.from_torchvision("resnet34", sd)
    bf16 = models.from_torchvision("resnet34", sd, dtype=jnp.bfloat16)
    f32.eval(), bf16.eval()
    x = nhwc(random_input(97))
    assert bf16.feature_map(x).dtype == jnp.bfloat16
    for _, v in nnx.to_flat_state(nnx.state(bf16, nnx.Any(nnx.Param, nnx.BatchStat))):
        assert v.get_value().dtype == jnp.float32
    a, b = np.asarray(forward(f32, x)), np.asarray(forward(bf16, x))
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.05 * np.abs(a).max()
    bf16.train()
    forward(bf16, x)
    assert bf16.bn1.mean.get_value().dtype == jnp.float32


def test_densenet_remat_gives_identical_gradients(monkeypatch):
    from jcxr.models import densenet

    # A small DenseNet runs the same dense-layer code as densenet121 in a fraction of the time.
    monkeypatch.setitem(densenet.CONFIGS, "densenet_test", (8, (2, 3, 2, 2), 16))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 32, 32, 3)), jnp.float32)

    def grads(remat):
        model = densenet.DenseNet("densenet_test", num_outputs=1, remat=remat, rngs=nnx.Rngs(3))
        model.train()

        @nnx.jit
        def step(model, x):
            return nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)

        return [np.asarray(g) for g in jax.tree.leaves(step(model, x))]

    plain, remat = grads(False), grads(True)
    assert len(plain) == len(remat) > 50
    # Same maths; float32 rounding differs where XLA fuses the recomputation differently and
    # train-mode BatchNorm amplifies it (~1e-5 of the gradient's size). A remat bug would be O(1).
    scale = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in plain))
    for a, b in zip(plain, remat, strict=True):
        assert np.linalg.norm(b - a) <= 1e-4 * scale


def test_stochastic_depth_only_in_training():
    model = models.create("efficientnet_b0", num_outputs=1, stochastic_depth=0.5)
    x = jnp.ones((4, 32, 32, 3))
    model.eval()
    np.testing.assert_array_equal(forward(model, x), forward(model, x))
    model.train()
    model.set_attributes(use_running_average=True, raise_if_not_found=False)
    assert not np.array_equal(forward(model, x), forward(model, x))


def test_jitted_train_step_compiles_once():
    model = models.create("resnet18", num_outputs=1)
    model.train()
    step = nnx.jit(lambda m, x: nnx.grad(lambda m: jnp.mean(m(x)))(m))
    inputs = [jnp.full((2, 32, 32, 3), float(i)) for i in range(4)]  # made before counting
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, *_, **__: (
            compiles.append(event)
            if event == "/jax/core/compile/backend_compile_duration"
            else None
        )
    )
    step(model, inputs[0])
    first = len(compiles)
    for x in inputs[1:]:
        jax.block_until_ready(step(model, x))
    assert first >= 1 and len(compiles) == first


def test_flops_scale_with_resolution_and_match_torchvision_roughly():
    # torchvision documents 3.66 G multiply-adds for resnet34 at 224 px; XLA counts 2 per MAC.
    small, large = summarise("resnet34", 112), summarise("resnet34", 224)
    assert large["flops"] / 2e9 == pytest.approx(3.66, rel=0.1)
    assert large["flops"] / small["flops"] == pytest.approx(4.0, rel=0.05)


def test_a_sweep_below_an_architectures_smallest_input_stops_at_validation():
    from jcxr.train.config import defaults, validate

    config = defaults()
    config.sweep.archs, config.sweep.resolutions = ("resnet18", "inception_v3"), (64, 128)
    with pytest.raises(ValueError, match=r"inception_v3 takes images of 75 px and up; got \[64"):
        validate(config)
    config.sweep.only = ("inception_v3:128",)  # its own resolutions only: fine
    validate(config)


def test_unknown_architecture_and_bad_options():
    with pytest.raises(ValueError, match=r"unknown architecture 'resnet35'.*resnet34"):
        models.create("resnet35")
    with pytest.raises(ValueError, match="head must be one of"):
        models.create("resnet18", head="attention")
    with pytest.raises(ValueError, match="remat is a DenseNet option"):
        models.create("resnet18", remat=True)
    with pytest.raises(ValueError, match="unknown format"):
        models.create("resnet18", pretrained=__file__)


@pytest.mark.parametrize("size,kernel,stride,pad", [(2, 3, 1, 1), (4, 3, 2, 1), (3, 3, 1, 0),
                                                    (4, 5, 1, 2), (4, 3, 1, 1)])  # fmt: skip
def test_small_map_convolution_on_cpu_equals_xla_convolution(size, kernel, stride, pad):
    """The im2col path (CPU, maps <= 4 px) against lax.conv_general_dilated, values and grads."""
    from jcxr.models.layers import conv_general_dilated

    rng = np.random.default_rng(size * kernel + stride)
    x = jnp.asarray(rng.normal(size=(3, size, size, 8)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 8, 5)), jnp.float32)
    args = ((stride, stride), ((pad, pad), (pad, pad)))
    dims = ("NHWC", "HWIO", "NHWC")

    def ours(x, w):
        return conv_general_dilated(x, w, *args, dimension_numbers=dims)

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, *args, dimension_numbers=dims)

    assert "conv_general_dilated" not in str(jax.make_jaxpr(ours)(x, w))  # im2col taken
    np.testing.assert_allclose(ours(x, w), xla(x, w), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda *p, f=f: f(*p).sum() ** 2, (0, 1))(x, w) for f in (ours, xla)]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
    big = jnp.zeros((1, 8, 8, 8), jnp.float32)
    assert "conv_general_dilated" in str(jax.make_jaxpr(ours)(big, w))  # larger maps: XLA's


@pytest.mark.parametrize("size,stride", [(7, 1), (8, 2), (9, 2), (16, 1), (1, 1)])
def test_pointwise_convolution_on_cpu_equals_xla_convolution(size, stride):
    """The 1 x 1 path (a matmul over the strided pixels) against XLA's convolution, values and
    grads, odd and even maps, stride 1 and 2; a padded or grouped 1 x 1 keeps XLA's."""
    from jcxr.models.layers import conv_general_dilated

    rng = np.random.default_rng(size + stride)
    x = jnp.asarray(rng.normal(size=(3, size, size, 8)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(1, 1, 8, 5)), jnp.float32)
    args = ((stride, stride), ((0, 0), (0, 0)))
    dims = ("NHWC", "HWIO", "NHWC")

    def ours(x, w, padding=args[1], groups=1):
        return conv_general_dilated(x, w, args[0], padding, dimension_numbers=dims,
                                    feature_group_count=groups)  # fmt: skip

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, *args, dimension_numbers=dims)

    assert "conv_general_dilated" not in str(jax.make_jaxpr(ours)(x, w))  # matmul taken
    np.testing.assert_allclose(ours(x, w), xla(x, w), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda *p, f=f: (f(*p) ** 2).sum(), (0, 1))(x, w) for f in (ours, xla)]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
    padded = jax.make_jaxpr(lambda x: ours(x, w, ((1, 1), (1, 1))))(x)
    grouped = jax.make_jaxpr(lambda x: ours(x, jnp.zeros((1, 1, 4, 6)), groups=2))(x)
    assert "conv_general_dilated" in str(padded) and "conv_general_dilated" in str(grouped)


@pytest.mark.parametrize("size,kernel,stride", [(7, 3, 1), (8, 3, 2), (9, 5, 2), (2, 5, 1),
                                                (16, 5, 1)])  # fmt: skip
def test_depthwise_convolution_on_cpu_equals_xla_grouped_convolution(size, kernel, stride):
    """The shifted-slices depthwise path against XLA's grouped convolution, values and grads,
    odd and even maps, stride 1 and 2; a grouped but not depthwise layer keeps XLA's."""
    from jcxr.models.layers import conv_general_dilated

    rng = np.random.default_rng(size * kernel + stride)
    x = jnp.asarray(rng.normal(size=(3, size, size, 6)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
    pad = (kernel - 1) // 2
    args = ((stride, stride), ((pad, pad), (pad, pad)))
    dims = ("NHWC", "HWIO", "NHWC")

    def ours(x, w, groups=6):
        return conv_general_dilated(x, w, *args, dimension_numbers=dims, feature_group_count=groups)

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, *args, dimension_numbers=dims,
                                            feature_group_count=6)  # fmt: skip

    assert "conv_general_dilated" not in str(jax.make_jaxpr(ours)(x, w))  # shifts taken
    np.testing.assert_allclose(ours(x, w), xla(x, w), rtol=1e-5, atol=1e-5)
    grads = [jax.grad(lambda *p, f=f: (f(*p) ** 2).sum(), (0, 1))(x, w) for f in (ours, xla)]
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.abs(b).max()))
    pairs = jnp.zeros((kernel, kernel, 2, 6), jnp.float32)  # 3 groups of 2 channels
    assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x: ours(x, pairs, 3))(x))
    # the kernel gradient is jcxr's CPU kernel (built on this machine: a compiler is here)
    gradient = jax.jit(jax.grad(lambda w: ours(x, w).sum())).lower(w).as_text()
    assert cpu_kernels.DEPTHWISE_WEIGHT_GRADIENT in gradient


def _depthwise_weight_gradient_float64(x, g, kernel, strides, padding):
    """dw[i, j, c] = sum over n, oh, ow of padded x[n, oh * sh + i, ow * sw + j, c] * g[...]."""
    (kh, kw), (sh, sw) = kernel, strides
    padded = np.pad(np.float64(x), ((0, 0), *padding, (0, 0)))
    ho, wo = g.shape[1:3]
    return np.stack([np.stack([
        np.einsum("nhwc,nhwc->c", padded[:, i : i + sh * ho : sh, j : j + sw * wo : sw], g)
        for j in range(kw)]) for i in range(kh)])  # fmt: skip


DEPTHWISE_CASES = [((3, 3), (1, 1), ((1, 1), (1, 1))), ((5, 5), (2, 2), ((2, 2), (2, 2))),
         ((3, 5), (2, 1), ((0, 2), (1, 3))), ((3, 3), (2, 2), ((0, 0), (0, 0)))]  # fmt: skip


@pytest.mark.parametrize("kernel,strides,padding", DEPTHWISE_CASES)
def test_depthwise_weight_gradient_kernel_against_float64_brute_force(kernel, strides, padding):
    """jcxr's CPU kernel on odd channel counts (a vector loop's tail), asymmetric padding and
    strides, against a float64 einsum over the strided windows."""
    assert cpu_kernels.available()
    rng = np.random.default_rng(sum(kernel) + strides[0])
    x = rng.normal(size=(3, 11, 10, 37)).astype(np.float32)
    (kh, kw), (sh, sw), ((t, b), (left, r)) = kernel, strides, padding
    out = ((11 + t + b - kh) // sh + 1, (10 + left + r - kw) // sw + 1)
    g = rng.normal(size=(3, *out, 37)).astype(np.float32)
    ours = jax.jit(cpu_kernels.depthwise_weight_gradient, static_argnums=(2, 3, 4))
    got = np.asarray(ours(x, g, kernel, strides, padding))
    expected = _depthwise_weight_gradient_float64(x, g, kernel, strides, padding)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_cpu_kernels_fall_back_to_xla_with_a_warning_when_they_cannot_be_built(
    tmp_path, monkeypatch
):
    """A compiler that fails: a warning naming the command, no library or partial file left in
    the cache, and the depthwise layer keeps XLA's own gradient."""
    monkeypatch.setenv("JCXR_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    with pytest.warns(UserWarning, match="CPU kernels are off.*false .*exited with 1"):
        assert cpu_kernels.available.__wrapped__() is False
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("JCXR_CPU_KERNELS", "0")
    assert cpu_kernels.available.__wrapped__() is False
    monkeypatch.setattr(cpu_kernels, "available", lambda: False)
    from jcxr.models.layers import conv_general_dilated

    w = jnp.ones((3, 3, 1, 4), jnp.float32)
    plain = jax.jit(
        jax.grad(
            lambda w: conv_general_dilated(
                jnp.ones((2, 6, 6, 4)), w, (1, 1), ((1, 1), (1, 1)), feature_group_count=4
            ).sum()
        )
    )
    assert cpu_kernels.DEPTHWISE_WEIGHT_GRADIENT not in plain.lower(w).as_text()
    np.testing.assert_allclose(plain(w)[1, 1, 0], 2 * 36)  # the centre tap sees every pixel


def _first_maximum_gradient(x, gradient, kernel, stride, padding):
    """torch's MaxPool2d backward by brute force: each window's gradient goes whole to its first
    maximum in row-major order (``np.argmax`` returns the first)."""
    h, w = x.shape[1:3]
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                    constant_values=-np.inf)  # fmt: skip
    result = np.zeros_like(padded)
    for b, i, j, channel in np.ndindex(gradient.shape):
        window = padded[
            b, i * stride : i * stride + kernel, j * stride : j * stride + kernel, channel
        ]
        r, q = np.unravel_index(np.argmax(window), window.shape)
        result[b, i * stride + r, j * stride + q, channel] += gradient[b, i, j, channel]
    return result[:, padding : padding + h, padding : padding + w]


@pytest.mark.parametrize("size,kernel,stride,padding", [(8, 3, 2, 1), (9, 3, 2, 1), (7, 3, 2, 0),
                                                        (6, 2, 2, 0), (5, 3, 1, 1)])  # fmt: skip
def test_max_pool_on_cpu_routes_the_gradient_as_xla_and_torch_do(size, kernel, stride, padding):
    """The shifted-slices gradient of :func:`jcxr.models.pooling.max_pool` on ReLU'd integers,
    where most windows hold ties: the same values as XLA's reduce_window and, bit for bit, the
    gradient of XLA's select-and-scatter and torch's rule by brute force. Inference keeps XLA's
    reduce_window; the gradient never uses select-and-scatter."""
    from jcxr.models.pooling import _reduce_window_max, max_pool

    rng = np.random.default_rng(size * kernel + stride + padding)
    x = jnp.asarray(np.maximum(rng.integers(-3, 3, (2, size, size, 4)), 0), jnp.float32)
    args = (kernel, stride, padding)
    pooled, pull = jax.vjp(lambda x: max_pool(x, *args), x)
    expected, xla_pull = jax.vjp(lambda x: _reduce_window_max(x, *args), x)
    gradient = jnp.asarray(rng.normal(size=pooled.shape), jnp.float32)
    (routed,) = pull(gradient)
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(routed, xla_pull(gradient)[0])
    np.testing.assert_array_equal(
        routed, _first_maximum_gradient(np.asarray(x), np.asarray(gradient), *args)
    )
    assert "select_and_scatter" not in str(
        jax.make_jaxpr(jax.grad(lambda x: max_pool(x, *args).sum()))(x)
    )
    assert "reduce_window_max" in str(jax.make_jaxpr(lambda x: max_pool(x, *args))(x))


def _convolve_float64(x, kernel, stride, padding):
    """Brute-force float64 convolution, NHWC x HWIO, zero padding: the sum over the taps of the
    shifted, strided input times each tap's [C, O] matrix."""
    kh, kw = kernel.shape[:2]
    padded = np.pad(x.astype(np.float64), ((0, 0), (padding,) * 2, (padding,) * 2, (0, 0)))
    rows = (padded.shape[1] - kh) // stride + 1
    cols = (padded.shape[2] - kw) // stride + 1
    out = 0.0
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i : i + stride * rows : stride, j : j + stride * cols : stride]
            out = out + window @ kernel[i, j].astype(np.float64)
    return out


@pytest.mark.parametrize("size,kernel,stride,padding,half", [
    (13, 7, 2, 3, False), (9, 3, 2, 1, False), (11, 3, 2, 0, True), (4, 3, 1, 1, False),
])  # fmt: skip
def test_first_convolution_on_grey_equals_it_on_normalised_rgb(size, kernel, stride, padding, half):
    """:func:`jcxr.models.inputs.input_conv` on ``[B, H, W, 1]`` grey against the convolution of
    the grey repeated to RGB and normalised (ImageNet's mean/std, or 0.5/0.5 as InceptionV3 and
    Xception take it), values and kernel gradients, and against a float64 brute force; the
    batch is convolved over one channel, as im2col + one matmul. Odd and even maps, padded or
    not."""
    from jcxr.models.inputs import HALF, IMAGENET_MEAN, IMAGENET_STD, input_conv
    from jcxr.models.layers import conv

    mean, std = (HALF, HALF) if half else (IMAGENET_MEAN, IMAGENET_STD)
    rng = np.random.default_rng(size + kernel)
    layer = conv(3, 5, kernel, stride=stride, padding=padding, rngs=nnx.Rngs(0))
    images = rng.random((2, size, size)).astype(np.float32)
    rgb = (np.repeat(images[..., None], 3, -1) - np.float32(mean)) / np.float32(std)
    weights = jnp.asarray(rng.normal(size=layer(jnp.asarray(rgb)).shape), jnp.float32)

    graph, params = nnx.split(layer)

    def loss(params, x):
        return jnp.sum(input_conv(nnx.merge(graph, params), x, mean=mean, std=std) * weights)

    on_grey = input_conv(layer, jnp.asarray(images[..., None]), mean=mean, std=std)
    on_rgb = layer(jnp.asarray(rgb))
    np.testing.assert_allclose(on_grey, on_rgb, rtol=1e-5, atol=1e-5)
    reference = _convolve_float64(rgb, np.asarray(layer.kernel.value), stride, padding)
    np.testing.assert_allclose(on_grey, reference, rtol=1e-5, atol=1e-5)
    grads = [jax.grad(loss)(params, jnp.asarray(x))["kernel"] for x in (images[..., None], rgb)]
    grads = [np.asarray(g.get_value()) for g in grads]
    np.testing.assert_allclose(*grads, rtol=1e-5, atol=1e-5 * np.abs(grads[1]).max())
    jaxpr = str(jax.make_jaxpr(lambda x: input_conv(layer, x))(jnp.asarray(images[..., None])))
    assert f"f32[2,{size},{size},3]" not in jaxpr  # no RGB copy of the batch is made
    assert "conv_general_dilated" not in jaxpr  # one channel: im2col + matmul on the CPU


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "efficientnet_b0", "mobilenet_v2",
                                  "mobilenet_v3_large", "inception_v3", "xception"])  # fmt: skip
def test_every_family_takes_grey_input_as_the_normalised_rgb(arch):
    """Each family's stem (its first stage, which every forward pass runs through: the rest of
    the network never sees the input) in training mode on ``models.grey`` input against
    ``models.normalise``'s RGB: the same output and the same gradients for every parameter."""
    model = models.create(arch, rngs=nnx.Rngs(0))
    model.train()
    model.set_attributes(deterministic=True, raise_if_not_found=False)
    size = models.min_size(arch) + 1
    images = jnp.asarray(np.random.default_rng(1).random((2, size, size)), jnp.float32)
    graph, params, rest = nnx.split(model, nnx.Param, ...)

    @jax.jit
    def stem(params, rest, x):
        return nnx.merge(graph, params, rest).stages()[0][1](x)

    inputs = (models.grey(images), models.normalise(images))
    outputs = [stem(params, rest, x) for x in inputs]
    scale = float(jnp.abs(outputs[1]).max())
    np.testing.assert_allclose(*outputs, rtol=1e-5, atol=1e-5 * scale)
    weights = jnp.asarray(np.random.default_rng(2).normal(size=outputs[0].shape), jnp.float32)
    pull = jax.jit(jax.grad(lambda p, rest, x: jnp.sum(stem(p, rest, x) * weights)))
    grads = [pull(params, rest, x) for x in inputs]
    for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(float(jnp.abs(b).max()), 1.0))


def test_grey_input_needs_a_three_channel_first_convolution():
    from jcxr.models.inputs import input_conv
    from jcxr.models.layers import conv

    with pytest.raises(ValueError, match="over 3 channels, ungrouped; this one takes 4 in 1"):
        input_conv(conv(4, 8, 3, rngs=nnx.Rngs(0)), jnp.zeros((1, 8, 8, 1)))
