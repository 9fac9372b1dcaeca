from fnscope.cli import main

main()
