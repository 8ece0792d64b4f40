# The app database: PostgreSQL Flexible Server with private access only (a delegated subnet
# and a private DNS zone), zone-redundant HA and geo-redundant backups where asked, TLS
# required. Baton's connection URL goes into Key Vault (module key_vault), not into outputs.
variable "name" {
  type        = string
  description = "Server name, globally unique."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "vnet_id" {
  type        = string
  description = "The virtual network its private DNS zone links to."
}

variable "delegated_subnet_id" {
  type        = string
  description = "The subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
}

variable "sku_name" {
  type        = string
  description = "Compute, e.g. GP_Standard_D4ds_v5."
}

variable "storage_mb" {
  type        = number
  description = "Storage size in MB."
}

variable "high_availability" {
  type        = bool
  description = "A zone-redundant standby (production)."
}

variable "administrator_login" {
  type        = string
  description = "The administrator's login name."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "random_password" "administrator" {
  length  = 32
  special = false
}

resource "azurerm_private_dns_zone" "this" {
  name                = "${var.name}.private.postgres.database.azure.com"
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  name                  = "${var.name}-link"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.this.name
  virtual_network_id    = var.vnet_id
  tags                  = var.tags
}

resource "azurerm_postgresql_flexible_server" "this" {
  #checkov:skip=CKV2_AZURE_57:private access by VNet integration (a delegated subnet, no public endpoint), the other private option; a private endpoint is for servers with public access mode
  name                          = var.name
  resource_group_name           = var.resource_group_name
  location                      = var.location
  version                       = "16"
  sku_name                      = var.sku_name
  storage_mb                    = var.storage_mb
  delegated_subnet_id           = var.delegated_subnet_id
  private_dns_zone_id           = azurerm_private_dns_zone.this.id
  public_network_access_enabled = false
  administrator_login           = var.administrator_login
  administrator_password        = random_password.administrator.result
  backup_retention_days         = 35
  geo_redundant_backup_enabled  = var.high_availability
  zone                          = "1"
  tags                          = var.tags

  dynamic "high_availability" {
    for_each = var.high_availability ? [1] : []
    content {
      mode                      = "ZoneRedundant"
      standby_availability_zone = "2"
    }
  }

  depends_on = [azurerm_private_dns_zone_virtual_network_link.this]
}

resource "azurerm_postgresql_flexible_server_configuration" "require_tls" {
  name      = "require_secure_transport"
  server_id = azurerm_postgresql_flexible_server.this.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_configuration" "log_checkpoints" {
  name      = "log_checkpoints"
  server_id = azurerm_postgresql_flexible_server.this.id
  value     = "on"
}

resource "azurerm_postgresql_flexible_server_database" "baton" {
  name      = "baton"
  server_id = azurerm_postgresql_flexible_server.this.id
  charset   = "UTF8"
  collation = "en_US.utf8"
}

output "id" {
  value = azurerm_postgresql_flexible_server.this.id
}

output "connection_url" {
  description = "SQLAlchemy URL for BATON_DATABASE_URL (asyncpg, TLS required)."
  value       = "postgresql+asyncpg://${var.administrator_login}:${random_password.administrator.result}@${azurerm_postgresql_flexible_server.this.fqdn}:5432/${azurerm_postgresql_flexible_server_database.baton.name}?ssl=require"
  sensitive   = true
}
