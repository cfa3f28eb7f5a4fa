# Quick start: `make demo` (set up + plan/apply the example project), `make test` (set up + run the tests).
.PHONY: setup demo test data clean clinic

setup:
	@scripts/setup.sh

data: setup
	@.venv/bin/python scripts/generate_data.py

demo: data
	.venv/bin/ml validate
	.venv/bin/ml plan
	.venv/bin/ml apply --auto-approve
	.venv/bin/ml plan --detailed-exitcode

# The second example (examples/clinic): regression and multiclass models, a shadow-rolled service.
clinic: setup
	@.venv/bin/python examples/clinic/generate_data.py
	cd examples/clinic && ../../.venv/bin/ml validate && ../../.venv/bin/ml apply --auto-approve && ../../.venv/bin/ml plan --detailed-exitcode

test: setup
	@scripts/setup-test.sh
	.venv/bin/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf .ml data feature_repo/data
