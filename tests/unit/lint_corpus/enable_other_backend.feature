Feature: drained one backend, enabled another
  Scenario: drain app, enable api
    Given the load balancer is lb1
    And I want to update hosts with class roles::web
    And I expect to update 9 hosts
    When I drain the hosts in the load balancer backend app
    Then the hosts should be drained in the load balancer backend app
    When I enable the hosts in the load balancer backend api
    Then the hosts should be enabled in the load balancer backend api
