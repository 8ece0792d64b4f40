# AKS: a system node pool for the cluster's own pods and an autoscaled pool for Baton's worker
# fleets; Azure CNI (overlay by default), Calico network policies (the chart ships
# NetworkPolicies), the OIDC issuer and workload identity (pods get Entra tokens, no secrets),
# the Key Vault secrets provider (the chart mounts the encryption keys from it), Entra ID RBAC
# with local accounts off, and container insights into Log Analytics.
variable "name" {
  type        = string
  description = "Cluster name."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes minor version, e.g. 1.31."
}

variable "subnet_id" {
  type        = string
  description = "The subnet the nodes join."
}

variable "network_plugin_mode" {
  type        = string
  description = "\"overlay\" (pod IPs outside the VNet, the default) or \"\" for classic Azure CNI."

  validation {
    condition     = contains(["overlay", ""], var.network_plugin_mode)
    error_message = "network_plugin_mode must be \"overlay\" or \"\"."
  }
}

variable "system_vm_size" {
  type        = string
  description = "VM size of the system pool."
}

variable "worker_vm_size" {
  type        = string
  description = "VM size of the pool Baton's pods run on."
}

variable "worker_min_count" {
  type        = number
  description = "Fewest worker nodes the cluster autoscaler keeps."
}

variable "worker_max_count" {
  type        = number
  description = "Most worker nodes the cluster autoscaler adds."
}

variable "admin_group_object_ids" {
  type        = list(string)
  description = "Entra ID groups that administer the cluster."
}

variable "api_server_authorized_ip_ranges" {
  type        = list(string)
  description = "CIDRs that may reach the API server (CI runners, the operators' network)."
}

variable "log_analytics_workspace_id" {
  type        = string
  description = "Where container insights go."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_kubernetes_cluster" "this" {
  #checkov:skip=CKV_AZURE_115:the API server is reachable only from api_server_authorized_ip_ranges, with Entra ID RBAC and local accounts off; a private cluster would need CI runners inside the VNet (docs/DEPLOY.md)
  #checkov:skip=CKV_AZURE_6:authorized ranges are set in api_server_access_profile (azurerm 4), which this check does not read
  #checkov:skip=CKV_AZURE_117:disks are encrypted at the host (host_encryption_enabled) with platform keys; a disk encryption set with customer keys is for teams with that mandate
  name                              = var.name
  resource_group_name               = var.resource_group_name
  location                          = var.location
  dns_prefix                        = var.name
  kubernetes_version                = var.kubernetes_version
  sku_tier                          = "Standard"
  automatic_upgrade_channel         = "patch"
  node_os_upgrade_channel           = "NodeImage"
  oidc_issuer_enabled               = true
  workload_identity_enabled         = true
  local_account_disabled            = true
  role_based_access_control_enabled = true
  azure_policy_enabled              = true
  tags                              = var.tags

  default_node_pool {
    name                         = "system"
    vm_size                      = var.system_vm_size
    vnet_subnet_id               = var.subnet_id
    auto_scaling_enabled         = true
    min_count                    = 2
    max_count                    = 4
    max_pods                     = 110
    os_disk_type                 = "Ephemeral"
    host_encryption_enabled      = true
    only_critical_addons_enabled = true
    zones                        = ["1", "2", "3"]

    upgrade_settings {
      max_surge = "33%"
    }
  }

  identity {
    type = "SystemAssigned"
  }

  network_profile {
    network_plugin      = "azure"
    network_plugin_mode = var.network_plugin_mode == "" ? null : var.network_plugin_mode
    network_policy      = "calico"
    load_balancer_sku   = "standard"
  }

  api_server_access_profile {
    authorized_ip_ranges = var.api_server_authorized_ip_ranges
  }

  azure_active_directory_role_based_access_control {
    azure_rbac_enabled     = true
    admin_group_object_ids = var.admin_group_object_ids
  }

  key_vault_secrets_provider {
    secret_rotation_enabled  = true
    secret_rotation_interval = "2m"
  }

  oms_agent {
    log_analytics_workspace_id = var.log_analytics_workspace_id
  }
}

resource "azurerm_kubernetes_cluster_node_pool" "workers" {
  name                    = "workers"
  kubernetes_cluster_id   = azurerm_kubernetes_cluster.this.id
  vm_size                 = var.worker_vm_size
  vnet_subnet_id          = var.subnet_id
  auto_scaling_enabled    = true
  min_count               = var.worker_min_count
  max_count               = var.worker_max_count
  max_pods                = 110
  os_disk_type            = "Ephemeral"
  host_encryption_enabled = true
  zones                   = ["1", "2", "3"]
  tags                    = var.tags

  upgrade_settings {
    max_surge = "33%"
  }
}

output "id" {
  value = azurerm_kubernetes_cluster.this.id
}

output "name" {
  value = azurerm_kubernetes_cluster.this.name
}

output "oidc_issuer_url" {
  value = azurerm_kubernetes_cluster.this.oidc_issuer_url
}

output "kubelet_object_id" {
  value = azurerm_kubernetes_cluster.this.kubelet_identity[0].object_id
}

output "secrets_provider_client_id" {
  description = "For the SecretProviderClass (userAssignedIdentityID)."
  value       = azurerm_kubernetes_cluster.this.key_vault_secrets_provider[0].secret_identity[0].client_id
}

output "secrets_provider_object_id" {
  value = azurerm_kubernetes_cluster.this.key_vault_secrets_provider[0].secret_identity[0].object_id
}
