from stride.cli import main

main()
