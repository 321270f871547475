"""Django settings for Kodify server.

With nothing set, Kodify runs on embedded defaults: SQLite under ``KODIFY_DATA_DIR``, an
in-memory channel layer and eager Celery.  ``DB_URL`` and ``REDIS_URL`` switch to the
production services.  ``environment.py`` and ``serving.py`` read every variable (bad
values are reported by the system checks in ``kodify_site/checks.py``); ``framework.py``
turns them into Django's, Channels', Celery's and DRF's settings; ``console.py`` is the
console's look (django-unfold).
"""

from kodify_site.settings.console import *  # noqa: F403
from kodify_site.settings.environment import *  # noqa: F403
from kodify_site.settings.environment import env
from kodify_site.settings.framework import *  # noqa: F403
from kodify_site.settings.serving import *  # noqa: F403

# Everything the readers above found wrong; reported by kodify_site.checks.
ENV_PROBLEMS = tuple(env.problems)
ENV_WARNINGS = tuple(dict.fromkeys(env.warnings))
ENV_VARIABLES = env.variables
