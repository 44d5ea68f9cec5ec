"""alembic's entry point: migrations run on the connection ``jobs.database.migrate`` hands over."""

from alembic import context

context.configure(connection=context.config.attributes["connection"], transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
