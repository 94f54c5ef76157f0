from tokensvc.cli import run

run()
