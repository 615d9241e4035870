"""Configs: shipped YAMLs, overrides, validation errors that name the key, round trips, CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_type_hints

import pytest
import yaml
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo

from mvmr.cli import main
from mvmr.config import (
    CONFIG_DIR,
    Config,
    LossConfig,
    from_dict,
    load_config,
    save_config,
    shipped_configs,
    to_dict,
    to_yaml,
    validate,
)
from mvmr.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_shipped_configs_load_and_root_configs_point_to_them() -> None:
    assert {"stl10", "imagenet", "cifar10", "reference_code", "demo"} <= set(shipped_configs())
    for name in shipped_configs():
        load_config(name)
        assert (REPO / "configs" / f"{name}.yaml").read_text() == (CONFIG_DIR / f"{name}.yaml").read_text()


def test_stl10_config_is_the_papers_setup() -> None:
    c = load_config(REPO / "configs" / "stl10.yaml")
    assert (c.model.encoder, c.model.projector, c.model.small_images) == ("resnet50", "8192-8192-8192", False)
    assert (c.trainer.max_epochs, c.data.batch_size, c.trainer.accumulate_grad_batches) == (1000, 256, 4)
    assert (c.optim.optimizer, c.optim.lr, c.optim.scheduler, c.trainer.precision) == (
        "adam",
        1e-4,
        "cosine",
        "16-mixed",
    )
    assert (c.loss.lambda_, c.loss.mu, c.loss.alpha, c.loss.beta, c.loss.gamma, c.loss.eps) == (1, 1, 1, 1, 1, 1e-4)
    assert (c.loss.l3, c.loss.squared) == ("maximize", True)
    assert [r.name for r in c.representations.items] == ["pixels", "scatnet", "augmented_pixels", "hog", "local_std"]
    assert c.representations.items[1].kwargs == {"J": 2, "L": 8}
    assert c.representations.items[3].kwargs == {"orientations": 24, "cell": 8}
    assert all(vars(c.data.augmentation).values())
    assert (c.data.kind, c.data.split, c.data.image_size) == ("stl10", "train+unlabeled", 96)


def test_reference_code_config_differs_only_in_the_loss() -> None:
    from mvmr.losses import REFERENCE_CODE

    ref, paper = to_dict(load_config("reference_code")), to_dict(load_config("stl10"))
    assert {k: ref["loss"][k] for k in REFERENCE_CODE} == REFERENCE_CODE
    for section in ("data", "model", "representations", "optim", "trainer"):
        assert ref[section] == paper[section], section


def test_overrides_are_yaml_scalars_and_reach_nested_keys() -> None:
    c = load_config(
        "stl10",
        [
            "trainer.max_epochs=10",
            "loss.l3=minimize",
            "optim.lr=3e-4",
            "data.subset=null",
            "representations.items.3.kwargs.orientations=9",
            "loss.beta={pixels: 1, scatnet: 2, augmented_pixels: 1, hog: 1, local_std: 0}",
            "trainer.devices=2",
            "model.mean=[0.5, 0.5, 0.5]",
            "model.std=[0.5, 0.5, 0.5]",
        ],
    )
    assert c.trainer.max_epochs == 10 and c.loss.l3 == "minimize" and c.optim.lr == 3e-4
    assert c.representations.items[3].kwargs["orientations"] == 9
    assert c.loss.beta["scatnet"] == 2.0 and c.trainer.devices == 2


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epoch=3", r"^trainer\.max_epoch: unknown key \(did you mean 'max_epochs'\?\)"),
        ("nonsense=1", r"^nonsense: unknown key"),
        ("trainer.max_epochs=ten", r"^trainer\.max_epochs: expected int, got str 'ten'"),
        ("loss.squared=1", r"^loss\.squared: expected bool, got int 1"),
        ("data.batch_size=2.5", r"^data\.batch_size: expected int"),
        ("optim.lr=-0.1", r"^optim\.lr: must be > 0.0, got -0.1"),
        ("optim.lr=nan", r"^optim\.lr: must be > 0.0"),
        ("data.batch_size=1", r"^data\.batch_size: must be >= 2, got 1"),
        ("loss.l3=foo", r"^loss\.l3: expected one of 'maximize', 'minimize', got 'foo'"),
        ("optim.optimizer=sgd", r"^optim\.optimizer: expected one of 'adam', 'adamw', 'lars', got 'sgd'"),
        ("trainer.precision=16", r"^trainer\.precision: expected one of .*got 16"),
        ("data.channels=2", r"^data\.channels: expected one of 1, 3, got 2"),
        ("data.val_fraction=1.5", r"^data\.val_fraction: must be < 1.0"),
        ("data.augmentation.crop_scale=[0.5, 0.2]", r"^data\.augmentation\.crop_scale: expected \[min, max\]"),
        ("loss.eps=0", r"^loss\.eps: must be > 0.0"),
        ("model.projector=8192-x", r"^model\.projector: expected widths"),
        ("representations.items.0.name=sift", r"^representations\.items\[0\]\.name: unknown representation 'sift'"),
        ("representations.items.0.weight=-1", r"^representations\.items\[0\]\.weight: must be >= 0.0"),
        ("loss.beta={hog: 1}", r"^loss\.beta: no weight for representation 'pixels'"),
        ("loss.beta.hog=2", r"^loss\.beta: is 1\.0, not a mapping"),
        ("optim.warmup_epochs=1000", r"^optim\.warmup_epochs: must be < trainer\.max_epochs"),
        ("optim.min_lr=1", r"^optim\.min_lr: must be <= optim\.lr"),
        ("trainer.devices=0", r"^trainer\.devices: expected a positive count"),
        ("trainer.limit_train_batches=2.5", r"^trainer\.limit_train_batches: a fraction must be <= 1\.0"),
        ("representations.items.9.weight=1", r"^representations\.items\.9: no list item"),
        ("trainer.max_epochs", r"expected key=value"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("stl10", [override])


def test_yaml_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: stl10.yaml\ndata:\n  augmentation:\n    blur: sometimes\n")
    with pytest.raises(ConfigError, match=r"^data\.augmentation\.blur: expected bool, got str 'sometimes'"):
        load_config(bad)
    bad.write_text("trainer: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"^trainer: expected a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_python_built_configs_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"^loss\.l3: expected one of"):
        validate(Config(loss=LossConfig(l3="foo")))  # type: ignore[arg-type]


def test_dump_and_reload_round_trip(tmp_path: Path) -> None:
    c = load_config("demo", ["trainer.max_epochs=3", "loss.l3=minimize"])
    path = save_config(c, tmp_path / "run" / "config.yaml")
    assert load_config(path) == c
    assert from_dict(yaml.safe_load(to_yaml(c))) == c
    assert "lambda_: 1.0" in path.read_text() and "lr: 0.0001" in to_yaml(load_config("stl10"))


def test_cli_info_prints_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--config", "stl10", "trainer.max_epochs=7"]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["trainer"]["max_epochs"] == 7 and out["probe"]["enabled"] is True  # defaults written out
    assert main(["info", "--list"]) == 0
    assert "reference_code" in capsys.readouterr().out


def test_cli_pretrain_reports_config_errors_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pretrain", "--config", "stl10", "loss.l3=foo"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "mvmr pretrain: error: loss.l3: expected one of 'maximize', 'minimize', got 'foo'"


def test_every_option_is_documented_where_it_is_declared() -> None:
    sections = [Config]
    for section in sections:
        hints = get_type_hints(section, include_extras=True)
        for f in dataclasses.fields(section):
            if dataclasses.is_dataclass(hints[f.name]):
                assert hints[f.name].__doc__, f"{section.__name__}.{f.name}"
                sections.append(hints[f.name])
                continue
            docs = [m.description for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, FieldInfo)]
            assert any(docs), f"{section.__name__}.{f.name} has no description"
    assert len(sections) == 12  # every section is reachable from Config (regression included)
    assert "description" in TypeAdapter(Config).json_schema()["$defs"]["LossConfig"]["properties"]["l3"]


def test_method_fields_and_override_forms() -> None:
    c = Config()
    assert (c.method, c.method_kwargs, c.plugins) == ("mvmr", {}, [])
    c = load_config(
        "stl10",
        [
            "method=vicreg",
            "method_kwargs={sim_coeff: 25, std_coeff: 25.0}",
            "representations.items[3].kwargs.cell=16",
            "output_dir=runs/${name}",
        ],
    )
    assert (c.method, c.method_kwargs) == ("vicreg", {"sim_coeff": 25, "std_coeff": 25.0})
    assert c.representations.items[3].kwargs == {"orientations": 24, "cell": 16}
    assert c.output_dir == "runs/mvmr-stl10"
    for override, message in [
        ("method=''", r"^method: must not be empty"),
        ("optim.lr=true", r"^optim\.lr: expected float, got bool True"),
        ("plugins=oops", r"^plugins: expected a list of str"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config("stl10", [override])


def test_plugins_are_imported_before_representation_names_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mvmr_test_edges_plugin.py").write_text(
        "import torch\n"
        "from mvmr.representations import Representation, register\n\n\n"
        "@register('edges_test')\n"
        "class Edges(Representation):\n"
        "    name = 'edges_test'\n\n"
        "    def forward(self, images: torch.Tensor) -> torch.Tensor:\n"
        "        return images.diff(dim=-1).flatten(1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "edges.yaml"
    config.write_text("representations:\n  items: [{name: edges_test}]\n")
    with pytest.raises(ConfigError, match=r"^representations\.items\[0\]\.name: unknown representation 'edges_test'"):
        load_config(config)
    config.write_text("plugins: [mvmr_test_edges_plugin]\nrepresentations:\n  items: [{name: edges_test}]\n")
    c = load_config(config)
    assert c.plugins == ["mvmr_test_edges_plugin"] and [r.name for r in c.representations.items] == ["edges_test"]
    with pytest.raises(ConfigError, match=r"^plugins\[0\]: cannot import plugin module 'no_such_module'"):
        load_config(config, ["plugins=[no_such_module]"])
