from rmqm.cli.main import main

main()
