# Huizhen developer commands. Each target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format messages venv clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	@touch $(STAMP)

venv: $(STAMP)

# Embedded default: SQLite, in-memory channel layer, inline tasks, data under ./var.
RUN_PACKAGES := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc:fonts-wqy-zenhei

run: $(STAMP)
	scripts/ensure-system-packages $(RUN_PACKAGES) || echo "Signed report PDFs need a Chinese font (fonts-wqy-zenhei); everything else runs without it." >&2
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py serve

# Lint and the whole test suite against PostgreSQL and Redis (throwaway servers if none run).
SYSTEM_PACKAGES := storescu:dcmtk /usr/bin/chromium:chromium Orthanc:orthanc \
	/usr/share/orthanc/plugins/libOrthancDicomWeb.so:orthanc-dicomweb \
	/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc:fonts-wqy-zenhei
BENCH_PACKAGES := /usr/share/orthanc/plugins/libOrthancWSI.so:orthanc-wsi

test: $(STAMP)
	scripts/ensure-system-packages $(SYSTEM_PACKAGES)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py makemigrations --check --dry-run
	scripts/with-test-services $(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	scripts/ensure-system-packages $(SYSTEM_PACKAGES) $(BENCH_PACKAGES)
	scripts/with-test-services $(PY) -m pytest -q -s tests/bench -p no:cacheprovider -o testpaths=tests/bench -o python_files="test_*.py bench_*.py" $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=config.settings.base $(PY) manage.py makemigrations --check --dry-run

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

messages: $(STAMP)
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=var --no-obsolete
	$(PY) manage.py compilemessages --ignore=.venv

clean:
	rm -rf $(VENV) .pytest_cache
