def twice(value):
    return value + value
