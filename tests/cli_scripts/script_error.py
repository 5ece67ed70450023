"""A script that fails before any job runs (a plain Python error in the user's code)."""


def load_config():
    raise ValueError("config is missing key 'input'")  # SCRIPT-RAISE-LINE


load_config()
