# Key Vault: Baton's payload encryption keys (put in by the operators with `baton keys`, see
# docs/DEPLOY.md, so they never pass through Terraform state) and the database and Redis URLs.
# RBAC authorization, purge protection, no public access (a private endpoint).
variable "name" {
  type        = string
  description = "Vault name: 3 to 24 letters, digits and dashes, globally unique."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "tenant_id" {
  type        = string
  description = "The Entra ID tenant."
}

variable "endpoints_subnet_id" {
  type        = string
  description = "The subnet for its private endpoint."
}

variable "database_url" {
  type        = string
  description = "BATON_DATABASE_URL, stored as the secret baton-database-url."
  sensitive   = true
}

variable "redis_url" {
  type        = string
  description = "BATON_REDIS_URL, stored as the secret baton-redis-url."
  sensitive   = true
}

variable "secret_expiry" {
  type        = string
  description = "When the stored URLs expire (RFC 3339): rotate them before."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_key_vault" "this" {
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  tenant_id                     = var.tenant_id
  sku_name                      = "premium"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = 90
  public_network_access_enabled = false
  tags                          = var.tags

  network_acls {
    default_action = "Deny"
    bypass         = "AzureServices"
  }
}

resource "azurerm_private_endpoint" "vault" {
  name                = "pe-${var.name}"
  resource_group_name = var.resource_group_name
  location            = var.location
  subnet_id           = var.endpoints_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "vault"
    private_connection_resource_id = azurerm_key_vault.this.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }
}

resource "azurerm_key_vault_secret" "database_url" {
  name            = "baton-database-url"
  value           = var.database_url
  key_vault_id    = azurerm_key_vault.this.id
  content_type    = "text/plain"
  expiration_date = var.secret_expiry
}

resource "azurerm_key_vault_secret" "redis_url" {
  name            = "baton-redis-url"
  value           = var.redis_url
  key_vault_id    = azurerm_key_vault.this.id
  content_type    = "text/plain"
  expiration_date = var.secret_expiry
}

output "id" {
  value = azurerm_key_vault.this.id
}

output "name" {
  value = azurerm_key_vault.this.name
}
