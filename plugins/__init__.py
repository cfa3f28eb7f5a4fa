"""Built-in backends. Each registers through the `ml.providers` entry-point group like any third-party plugin."""
