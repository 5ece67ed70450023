"""The four talk-era forms of execute(), each running one small job."""

from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment


def job(tag):
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    env.from_elements(tag).print()
    return env


def main():
    results = [job("plain").execute(), job("local").execute(True), job("named").execute("named job"),
               job("named local").execute("named local job", False)]
    for r in results:
        print("result: name={} id_ok={}".format(r.get_job_name(), isinstance(r.jobID, str) and len(r.jobID) > 0))
