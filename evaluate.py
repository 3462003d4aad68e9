"""Score a trained model or classify an audio file.

    python evaluate.py ckpt_path=outputs/runs/.../checkpoints/best-07.ckpt [split=test]
    python evaluate.py run_id=<mlflow run id> audio=path/to/song.mp3

The work is done by :func:`genre.evaluate.evaluate`.
"""
import sys

import hydra
from omegaconf import DictConfig

from genre.errors import USER_ERRORS


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from genre.evaluate import evaluate

    try:
        evaluate(cfg)
    except USER_ERRORS as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    main()
