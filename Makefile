# Quick start: `make demo` (set up + plan/apply the example project), `make test` (set up + run the tests).
.PHONY: setup demo test data clean

setup:
	@scripts/setup.sh

data: setup
	@.venv/bin/python scripts/generate_data.py

demo: data
	.venv/bin/ml validate
	.venv/bin/ml plan
	.venv/bin/ml apply --auto-approve
	.venv/bin/ml plan --detailed-exitcode

test: setup
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf .ml data feature_repo/data
