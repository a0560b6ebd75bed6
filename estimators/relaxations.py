"""The relaxations under their first name: `gradest.relaxations` (the ground floor) holds them,
so that tasks and estimators alike can use them without one plugin folder importing another."""
from gradest.relaxations import *  # noqa: F401,F403 -- the names of __all__
from gradest.relaxations import __all__  # noqa: F401
