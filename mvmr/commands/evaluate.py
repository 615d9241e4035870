"""``mvmr evaluate``: linear / k-NN / semi-supervised / VOC07 / 2-D map evaluation of an encoder."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

HELP = "evaluate an encoder (checkpoint, backbone, baseline or representation): linear, knn, finetune, voc07, embed"

PROTOCOLS = ("linear", "knn", "finetune", "voc07", "embed", "all")

EPILOG = """\
protocols:
  linear    frozen encoder + one linear layer (Adam, lr 1e-4, batch 256, 100 epochs); epoch chosen
            on a stratified hold-out of the training set, test set scored once; top-1/top-5
  knn       weighted k-NN (k=20, T=0.07) on L2-normalised features
  finetune  encoder + linear head fine-tuned on 1%% or 10%% of the labels (--fraction / --subset-file)
  voc07     VOC2007 multi-label linear classification (--data points at VOCdevkit), mAP
  embed     t-SNE (or UMAP) map of the test features, PNG
  all       linear + knn + embed, sharing one feature extraction

examples:
  mvmr evaluate linear --checkpoint runs/pretrain/backbone.safetensors --data data/stl10-folders
  mvmr evaluate knn --encoder random:resnet18 --data .test-data/cifar10 --out runs/random18
  mvmr evaluate linear --encoder torchvision:resnet50 --weights resnet50-11ad3fa6.pth --data imagenette
  mvmr evaluate linear --representation hog --data .test-data/cifar10 --limit-train 5000
  mvmr evaluate finetune --checkpoint runs/pretrain/last.ckpt --data imagenet --fraction 0.01
  mvmr evaluate voc07 --checkpoint backbone.safetensors --data /data/VOCdevkit
Results are appended to RUN_DIR/results.md and written to RUN_DIR/results/<protocol>.json.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.add_argument("protocol", choices=PROTOCOLS, help="which evaluation to run")
    src = parser.add_argument_group("what to evaluate (exactly one of --checkpoint, --encoder, --representation)")
    src.add_argument("--checkpoint", metavar="PATH", help="exported backbone (.safetensors/.pt) or Lightning .ckpt")
    src.add_argument(
        "--encoder",
        metavar="SPEC",
        help="random:<name>, torchvision:<name> or timm:<name> (the latter two need --weights)",
    )
    src.add_argument(
        "--weights", metavar="FILE", help="local weight file for torchvision:/timm: encoders (never downloaded)"
    )
    src.add_argument(
        "--representation", metavar="NAME", help="hand-crafted representation, e.g. hog (linear probe on it)"
    )
    src.add_argument("--arch", help="architecture of a .ckpt when it does not record one (e.g. resnet50)")
    src.add_argument("--encoder-prefix", help="state_dict prefix of the encoder in a .ckpt (default: found)")
    src.add_argument(
        "--small-images",
        choices=("auto", "yes", "no"),
        default="auto",
        help="random: ResNets: CIFAR-style stem (auto: yes for images of 96 px or less)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--data", metavar="ROOT", help="dataset root (VOCdevkit for voc07)")
    data.add_argument(
        "--dataset", default="imagefolder", help="dataset kind for mvmr.data.build_dataset (default imagefolder)"
    )
    data.add_argument("--train-split", default=None, help="training split (default train; trainval for voc07)")
    data.add_argument(
        "--test-split", default=None, help="test split (default test, or val when there is no test folder)"
    )
    data.add_argument(
        "--image-size", type=int, default=None, help="resize + centre-crop images to this size (voc07 default 224)"
    )
    data.add_argument("--channels", type=int, choices=(1, 3), default=None, help="convert images to 1 or 3 channels")
    data.add_argument("--skip-corrupt", action="store_true", help="skip unreadable image files instead of failing")
    data.add_argument(
        "--limit-train", type=int, default=None, metavar="N", help="class-balanced sample of N training images"
    )
    data.add_argument(
        "--limit-test", type=int, default=None, metavar="N", help="class-balanced sample of N test images"
    )
    tr = parser.add_argument_group("protocol settings (defaults from the paper)")
    tr.add_argument("--epochs", type=int, default=100)
    tr.add_argument("--lr", type=float, default=1e-4)
    tr.add_argument("--batch-size", type=int, default=None, help="default 256 (linear, voc07) / 128 (finetune)")
    tr.add_argument("--weight-decay", type=float, default=0.0)
    tr.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="hold-out for choosing the epoch: of the training set for linear/voc07 (default 0.1), of the "
        "labelled subset for finetune (default 0: the paper's fixed schedule, no label beyond the "
        "budget)",
    )
    tr.add_argument(
        "--augment",
        dest="augment",
        action="store_true",
        default=None,
        help="linear: train on augmented views (features re-extracted each epoch; slow)",
    )
    tr.add_argument("--no-augment", dest="augment", action="store_false", help="finetune: no crop/flip augmentation")
    tr.add_argument(
        "--no-standardize",
        action="store_true",
        help="linear/voc07: no standardisation of the features (train-set mean/std) before the linear layer",
    )
    tr.add_argument("--k", type=int, default=20, help="knn: neighbours")
    tr.add_argument("--temperature", type=float, default=0.07, help="knn: weight temperature")
    tr.add_argument(
        "--fraction", type=float, default=None, help="finetune: label fraction, e.g. 0.01 or 0.1 (default 0.01)"
    )
    tr.add_argument(
        "--subset-file", default=None, help="finetune: file of image names (ImageNet 1%%/10%% subset format)"
    )
    tr.add_argument(
        "--ap",
        choices=("none", "11point"),
        default="none",
        help="voc07: average precision without interpolation (default, = scikit-learn) or VOC's 11-point",
    )
    tr.add_argument("--method", choices=("auto", "tsne", "umap"), default="auto", help="embed: t-SNE or UMAP")
    tr.add_argument("--max-points", type=int, default=5000, help="embed: class-balanced sample size")
    tr.add_argument("--seed", type=int, default=0)
    run_group = parser.add_argument_group("running")
    run_group.add_argument(
        "--out",
        metavar="RUN_DIR",
        default=None,
        help="run folder for results (default: the checkpoint's run folder, else runs/eval-<encoder>)",
    )
    run_group.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    run_group.add_argument("--num-workers", type=int, default=0, help="data loading workers")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bars")


def _default_run_dir(args: argparse.Namespace) -> Path:
    if args.checkpoint:
        parent = Path(args.checkpoint).resolve().parent
        return parent.parent if parent.name in ("checkpoints", "export") else parent
    label = args.encoder or f"representation-{args.representation}"
    return Path("runs") / ("eval-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-"))


def _test_split(args: argparse.Namespace) -> str:
    if args.test_split:
        return args.test_split
    if args.dataset == "imagefolder" and args.data:
        root = Path(args.data)
        if not (root / "test").is_dir() and (root / "val").is_dir():
            return "val"
    return "test"


def run(args: argparse.Namespace) -> int:
    from mvmr.data import DatasetSubset, build_dataset
    from mvmr.errors import ConfigError
    from mvmr.evaluation import encoders
    from mvmr.evaluation.dataset_info import check_same_classes, dataset_labels
    from mvmr.evaluation.extractor import FeatureExtractor
    from mvmr.evaluation.subsets import stratified_limit

    progress = not args.no_progress
    if args.protocol != "voc07" and not args.data and args.dataset != "fashion_mnist":
        raise ConfigError("--data ROOT is required (the dataset folder)")
    if args.protocol == "voc07" and not args.data:
        raise ConfigError("--data must point at the VOCdevkit folder for voc07")
    run_dir = Path(args.out) if args.out else _default_run_dir(args)

    def build_extractor(image_size: int | None, channels: int) -> FeatureExtractor:
        small = args.small_images == "yes" or (
            args.small_images == "auto" and image_size is not None and image_size <= 96
        )
        return encoders.resolve_encoder(
            checkpoint=args.checkpoint,
            encoder=args.encoder,
            weights=args.weights,
            representation=args.representation,
            arch=args.arch,
            encoder_prefix=args.encoder_prefix,
            small_images=small,
            in_chans=channels,
            seed=args.seed,
        )

    if args.protocol == "voc07":
        from mvmr.evaluation.voc07 import run_voc07

        extractor = build_extractor(args.image_size or 224, 3)
        return _finish(
            run_dir,
            [
                run_voc07(
                    extractor,
                    args.data,
                    config=_linear_config(args, progress),
                    size=args.image_size or 224,
                    train_split=args.train_split or "trainval",
                    test_split=args.test_split or "test",
                    encoder=extractor.description,
                    interpolation=args.ap,
                )
            ],
        )

    def load(split: str, channels: int | None, limit: int | None) -> Any:
        ds = build_dataset(
            args.dataset,
            args.data,
            split=split,
            size=args.image_size,
            download=False,
            skip_corrupt=args.skip_corrupt,
            channels=channels,
        )
        return ds if limit is None else DatasetSubset(ds, stratified_limit(dataset_labels(ds), limit, seed=args.seed))

    train_split, test_split = args.train_split or "train", _test_split(args)
    if args.encoder and args.encoder.startswith("random:"):  # a random encoder's stem follows the images' size
        channels = args.channels or 3
        train_ds = load(train_split, channels, args.limit_train)
        extractor = build_extractor(int(train_ds[0][0].shape[-1]), channels)
    else:
        extractor = build_extractor(args.image_size, args.channels or 3)
        channels = args.channels or extractor.metadata.get("in_chans") or (None if args.representation else 3)
        train_ds = load(train_split, channels, args.limit_train)
    test_ds = load(test_split, channels, args.limit_test)
    check_same_classes(train_ds, test_ds, names=(train_split, test_split))
    data_desc = f"{args.dataset}:{args.data} ({train_split} {len(train_ds)} / {test_split} {len(test_ds)})"
    common: dict[str, Any] = dict(encoder=extractor.description, dataset=data_desc)

    if args.protocol == "linear":
        from mvmr.evaluation.frozen import run_linear

        results = [
            run_linear(
                extractor,
                train_ds,
                test_ds,
                config=_linear_config(args, progress),
                image_size=args.image_size,
                **common,
            )
        ]
    elif args.protocol == "knn":
        from mvmr.evaluation.knn import run_knn

        results = [run_knn(extractor, train_ds, test_ds, config=_knn_config(args, progress), **common)]
    elif args.protocol == "finetune":
        from mvmr.evaluation.finetune import FinetuneConfig, run_finetune

        if args.subset_file and args.fraction is not None:
            raise ConfigError("give --fraction or --subset-file, not both")
        config = FinetuneConfig(
            fraction=None if args.subset_file else (args.fraction if args.fraction is not None else 0.01),
            subset_file=args.subset_file,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size or 128,
            weight_decay=args.weight_decay,
            val_fraction=args.val_fraction or 0.0,
            seed=args.seed,
            augment=args.augment is not False,
            device=args.device,
            num_workers=args.num_workers,
            progress=progress,
        )
        results = [
            run_finetune(
                extractor, train_ds, test_ds, config=config, out_dir=run_dir, image_size=args.image_size, **common
            )
        ]
    elif args.protocol == "embed":
        from mvmr.evaluation.embed import run_embed

        results = [run_embed(extractor, test_ds, run_dir, config=_embed_config(args, progress), **common)]
    else:  # all: linear + knn (one extraction of every split, evaluate_frozen) + embed of the test features
        from mvmr.evaluation.embed import embed_result
        from mvmr.evaluation.frozen import evaluate_frozen

        if args.augment:
            raise ConfigError(
                "--augment is not available with 'all' (it shares one feature extraction); run 'linear --augment'"
            )
        evaluation = evaluate_frozen(
            extractor,
            train_ds,
            test_ds,
            linear=_linear_config(args, progress),
            knn=_knn_config(args, progress),
            **common,
        )
        results = [
            *evaluation.results,
            embed_result(
                *evaluation.test_features,
                run_dir,
                config=_embed_config(args, progress),
                class_names=evaluation.linear.details["classes"],
                **common,
            ),
        ]
    return _finish(run_dir, results)


def _linear_config(args: argparse.Namespace, progress: bool) -> Any:
    from mvmr.evaluation.linear import LinearConfig

    return LinearConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size or 256,
        weight_decay=args.weight_decay,
        val_fraction=0.1 if args.val_fraction is None else args.val_fraction,
        seed=args.seed,
        augment=bool(args.augment),
        standardize=not args.no_standardize,
        device=args.device,
        num_workers=args.num_workers,
        progress=progress,
    )


def _knn_config(args: argparse.Namespace, progress: bool) -> Any:
    from mvmr.evaluation.knn import KNNConfig

    return KNNConfig(
        k=args.k, temperature=args.temperature, device=args.device, num_workers=args.num_workers, progress=progress
    )


def _embed_config(args: argparse.Namespace, progress: bool) -> Any:
    from mvmr.evaluation.embed import EmbedConfig

    return EmbedConfig(
        method=args.method,
        max_points=args.max_points,
        seed=args.seed,
        device=args.device,
        num_workers=args.num_workers,
        progress=progress,
    )


def _finish(run_dir: Path, results: list[Any]) -> int:
    """Save and print each result, then say where they are."""
    from mvmr.evaluation.results import format_metrics_table, save_result

    for result in results:
        md_path = save_result(run_dir, result)[1]
        print(format_metrics_table(result))
        print()
    print(f"results: {md_path}  ({', '.join(str(run_dir / 'results' / (r.key + '.json')) for r in results)})")
    return 0
