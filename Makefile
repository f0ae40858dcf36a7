# The two commands the README starts with: `make run` (train on a local cluster) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.herd-setup

.PHONY: setup run compose images test test-fast test-slow protos bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh
	bash scripts/setup.sh
	touch $(STAMP)

## The main job: IMPALA on CartPole-v1 on a local cluster (Redis + 4 services as processes), embedded defaults.
run: setup
	$(VENV)/bin/herd up --env gym:CartPole-v1 --actors 2 --steps 500000 --seed 1

## The same job on the docker-compose cluster (as root): images built here (no registry needed),
## redis, params, replay, learner, 2 actors, prometheus; summary.json is the last line; ends with down -v.
compose: setup
	$(PY) scripts/compose_run.py

## Only the images of docker-compose.yml (docs/deployment-compose.md).
images: setup
	PYTHON=$(PY) bash scripts/images.sh

## The whole suite: fast unit tests first, then integration and learning smoke tests.
test: setup
	$(PY) -m pytest -q -m "not slow"
	$(PY) -m pytest -q -m slow

protos: setup
	$(PY) scripts/gen_protos.py

bench: setup
	$(PY) benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .tools
