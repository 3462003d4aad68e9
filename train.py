"""Train a genre classifier: ``python train.py dataset=gtzan features=mel model=cnn3``.

Hydra composes conf/; see README.md. The work is done by :func:`genre.train.train`.
"""
import sys

import hydra
from omegaconf import DictConfig

from genre.errors import USER_ERRORS


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from genre.train import train

    try:
        metrics = train(cfg)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")
    return metrics.get("val/track_acc_best", float("nan"))  # the objective of sweeps


if __name__ == "__main__":
    main()
