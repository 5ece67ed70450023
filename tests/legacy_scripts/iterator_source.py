"""from_collection(PythonIterator): one iterator that ends with hasNext() false, one that
ends by raising java.util.NoSuchElementException from next()."""

from java.util import NoSuchElementException
from org.apache.flink.streaming.python.api.environment import PythonStreamExecutionEnvironment
from org.apache.flink.streaming.python.util import PythonIterator


class Countdown(PythonIterator):
    def __init__(self, start):
        self._n = start

    def hasNext(self):
        return self._n > 0

    def next(self):
        self._n -= 1
        return ("countdown", self._n + 1)


class Letters(PythonIterator):
    """Always claims to have more; next() raises when it runs out."""

    def __init__(self, letters):
        self._letters = list(letters)

    def hasNext(self):
        return True

    def next(self):
        if not self._letters:
            raise NoSuchElementException()
        return ("letter", self._letters.pop(0))


def main():
    env = PythonStreamExecutionEnvironment.get_execution_environment()
    env.from_collection(Countdown(3)).print()
    env.from_collection(Letters("xyz")).print()
    env.execute(True)
