"""Every method module is imported here explicitly, so the registry is complete on import."""

from methods import coresets  # noqa: F401
from methods import dc  # noqa: F401
from methods import dm  # noqa: F401
from methods import idc  # noqa: F401
from methods import mtt  # noqa: F401
from methods import tesla  # noqa: F401
from methods.base import METHODS, Method  # noqa: F401
