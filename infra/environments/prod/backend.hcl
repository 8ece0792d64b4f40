# terraform -chdir=infra init -backend-config=environments/prod/backend.hcl
# A storage account made once by hand (or by a bootstrap stack), with versioning and soft delete.
resource_group_name  = "rg-baton-tfstate"
storage_account_name = "batontfstate"
container_name       = "tfstate"
key                  = "baton-prod.tfstate"
use_azuread_auth     = true
