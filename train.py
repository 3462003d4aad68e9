"""Train a genre classifier: ``python train.py dataset=gtzan features=mel model=cnn3``.

Hydra composes conf/; see README.md. The same command is installed as ``genre-train``
(:func:`genre.cli.train`); the work is done by :func:`genre.train.train`.
"""
from genre.cli import train

if __name__ == "__main__":
    train()
