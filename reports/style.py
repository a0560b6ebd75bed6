"""The figure style under its first name (compatibility): the module is `gradest.plotting.style`,
where the cell kinds draw with it too. Plugin kinds written against ``gradest.reports.style``
keep working; new code imports `gradest.plotting.style`."""
from gradest.plotting.style import *  # noqa: F401,F403 -- every public name of the module
