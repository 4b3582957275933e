from rmqm.cli import main

main()
