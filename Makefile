# The two README commands: `make run` and `make test`. Both create .venv/ first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# pytest-xdist processes of `make test`, each a session of its own (tests/conftest.py): most tests
# wait on dbt, workers and the browser, so three keep two cores busy
TEST_PROCESSES ?= 3

.PHONY: run test test-fast screenshots venv browser sshd vendor dbt-build airflow lint clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

## Start the portal (web + queue worker) on the embedded PostgreSQL with demo data.
run: venv
	$(PY) manage.py runportal

## Run the whole test suite (installs Debian's chromium for the browser tests and openssh-server
## for the git-over-SSH tests when root).
test: venv browser sshd
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile

## The fast inner loop (well under a minute): the Django-free dbt library's tests, with no
## PostgreSQL, no Django and no dbt process (tests/conftest.py and pytest-django stay unloaded).
test-fast: venv
	$(PY) -m pytest --noconftest -p no:django tests/dbtlib

## Retake the pictures of the README and docs/ (docs/screenshots/*.png): the browser tests
## save them as they walk the pages (tests/e2e/conftest.py, `screenshot`).
screenshots: venv browser
	SCREENSHOTS=1 $(PY) -m pytest tests/e2e

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) \
	      && echo "installed chromium"; \
	  else echo "chromium not found and cannot be installed here: browser tests will skip (sudo apt-get install chromium)"; fi; }

# the git tests' SSH server (tests/gitservers.py) is a private sshd: Debian's openssh-server
sshd:
	@test -x /usr/sbin/sshd || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -q openssh-server >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q openssh-server >/dev/null)) \
	      && echo "installed openssh-server"; \
	  else echo "sshd not found and cannot be installed here: the git SSH tests will skip (sudo apt-get install openssh-server)"; fi; }

## Refresh static/vendor/ (committed) from the browser libraries package.json and
## package-lock.json pin: `npm ci` in a temporary directory, then their released files and
## licences are copied (deploy/vendor.py). Needs node and the npm registry; `make run` does not.
vendor: venv
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp package.json package-lock.json "$$tmp"/ \
	  && (cd "$$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) \
	  && $(PY) deploy/vendor.py "$$tmp/node_modules"

## `dbt seed` + `dbt build` of inventory_transforms against the portal's warehouse, at a shell.
dbt-build: venv
	$(PY) manage.py dbt inventory_transforms seed
	$(PY) manage.py dbt inventory_transforms build

## Apache Airflow 3.3.2 and its dbt Cloud provider in a virtualenv of their own under
## ~/.cache/transformation-portal/ (made once, reused; the dbt_cloud tests use it). Prints
## its `airflow`; the example DAGs are in dbt_cloud/airflow/dags/ (docs/dbt-cloud-api.md).
airflow: venv
	@$(PY) -c "from tests.dbt_cloud.airflow_tool import airflow_executable; print(airflow_executable())"

## ruff, then mypy (strict for dbtlib/ and kernel/; pyproject.toml [tool.mypy]).
lint: venv
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy .

clean:
	rm -rf $(VENV) staticfiles
