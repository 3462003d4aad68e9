"""Where Hydra finds the launcher of ``hydra/launcher=parallel``: Hydra instantiates launchers only from
classes defined in the ``hydra_plugins`` namespace, so the class is named here; its code is
:mod:`genre.runtime.launcher`."""
from genre.runtime import launcher


class ParallelLauncher(launcher.ParallelLauncher):
    """:class:`genre.runtime.launcher.ParallelLauncher`, under the name Hydra accepts."""
