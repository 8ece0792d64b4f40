# Baton on Azure: one environment per state (environments/<env>). See docs/DEPLOY.md.
data "azurerm_client_config" "current" {}

locals {
  name = "baton-${var.environment}"
  tags = merge(var.tags, { environment = var.environment, application = "baton" })
}

module "resource_group" {
  source   = "./modules/resource_group"
  name     = "rg-${local.name}"
  location = var.location
  tags     = local.tags
}

module "network" {
  source              = "./modules/network"
  name                = "vnet-${local.name}"
  resource_group_name = module.resource_group.name
  location            = module.resource_group.location
  address_space       = var.address_space
  tags                = local.tags
}

module "monitoring" {
  source              = "./modules/monitoring"
  name                = "log-${local.name}"
  resource_group_name = module.resource_group.name
  location            = module.resource_group.location
  retention_days      = var.log_retention_days
  tags                = local.tags
}

module "aks" {
  source                          = "./modules/aks"
  name                            = "aks-${local.name}"
  resource_group_name             = module.resource_group.name
  location                        = module.resource_group.location
  kubernetes_version              = var.kubernetes_version
  subnet_id                       = module.network.aks_subnet_id
  network_plugin_mode             = var.network_plugin_mode
  system_vm_size                  = var.system_vm_size
  worker_vm_size                  = var.worker_vm_size
  worker_min_count                = var.worker_min_count
  worker_max_count                = var.worker_max_count
  admin_group_object_ids          = var.admin_group_object_ids
  api_server_authorized_ip_ranges = var.api_server_authorized_ip_ranges
  log_analytics_workspace_id      = module.monitoring.workspace_id
  tags                            = local.tags
}

module "acr" {
  source              = "./modules/acr"
  name                = "batonacr${var.environment}${var.name_suffix}"
  resource_group_name = module.resource_group.name
  location            = module.resource_group.location
  replica_location    = var.replica_location
  endpoints_subnet_id = module.network.endpoints_subnet_id
  tags                = local.tags
}

module "postgresql" {
  source              = "./modules/postgresql"
  name                = "psql-${local.name}-${var.name_suffix}"
  resource_group_name = module.resource_group.name
  location            = module.resource_group.location
  vnet_id             = module.network.vnet_id
  delegated_subnet_id = module.network.postgresql_subnet_id
  sku_name            = var.postgresql_sku_name
  storage_mb          = var.postgresql_storage_mb
  high_availability   = var.postgresql_high_availability
  administrator_login = "baton"
  tags                = local.tags
}

module "redis" {
  source              = "./modules/redis"
  name                = "redis-${local.name}-${var.name_suffix}"
  resource_group_name = module.resource_group.name
  location            = module.resource_group.location
  sku_name            = var.redis_sku_name
  capacity            = var.redis_capacity
  endpoints_subnet_id = module.network.endpoints_subnet_id
  tags                = local.tags
}

module "key_vault" {
  source              = "./modules/key_vault"
  name                = "kv-${local.name}-${var.name_suffix}"
  resource_group_name = module.resource_group.name
  location            = module.resource_group.location
  tenant_id           = data.azurerm_client_config.current.tenant_id
  endpoints_subnet_id = module.network.endpoints_subnet_id
  database_url        = module.postgresql.connection_url
  redis_url           = module.redis.connection_url
  secret_expiry       = var.secret_expiry
  tags                = local.tags
}

module "identity" {
  source                     = "./modules/identity"
  name                       = "id-${local.name}"
  resource_group_name        = module.resource_group.name
  location                   = module.resource_group.location
  oidc_issuer_url            = module.aks.oidc_issuer_url
  kubernetes_namespace       = var.kubernetes_namespace
  service_account_name       = "${var.helm_release}-baton"
  acr_id                     = module.acr.id
  kubelet_object_id          = module.aks.kubelet_object_id
  key_vault_id               = module.key_vault.id
  secrets_provider_object_id = module.aks.secrets_provider_object_id
  tags                       = local.tags
}
