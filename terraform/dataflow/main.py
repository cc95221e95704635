"""Dataflow Flex Template entry point (FLEX_TEMPLATE_PYTHON_PY_FILE): the launcher runs this file with the
template's parameters as --name=value and Dataflow's own options; kubesigma builds the streaming job, which
the launcher's --template_location turns into a job description the service starts."""

import sys

from kubesigma.pipeline.commands.flex_template import launch

if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
