"""The PostgreSQL backend of the store (chosen by AVA_DATABASE_URL=postgresql://...)."""
