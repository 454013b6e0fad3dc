from qrate.cli import main

main()
