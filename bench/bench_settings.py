"""Settings for benchmark servers: the project's own, plus trivial baseline endpoints (bench_urls).

Used by bench/create_throughput.py as DJANGO_SETTINGS_MODULE=bench_settings, with bench/ and the
project directory on PYTHONPATH; the application's own URLs stay untouched.
"""

from superai_flow.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
